"""Reading and writing: MIDI through symusic, scores through music21, notewise text; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DRUMS_ONLY_FIXTURE, make_midi

from maia_hf.codec import NotewiseCodec
from maia_hf.errors import MaiaInputError, MaiaTokenError
from maia_hf.io import load_pieces, read_raw, to_piece, write_midi, write_musicxml, write_notewise, write_piece

TWO_TUNES_ABC = """X:1
T:First tune
M:3/4
L:1/8
K:G
G2 B2 d2 | g4 f2 | e2 d2 B2 | G6 |]

X:2
T:Second tune
M:6/8
L:1/8
K:D
DFA dAF | GBd gdB | AFD EFE | D3 D3 |]
"""


class TestMidi:
    def test_tracks_merge_and_metadata_is_kept(self, two_hands_midi, codec):
        (piece,) = load_pieces(two_hands_midi, codec)
        assert piece.notes.as_tuples() == [
            (48, 0, 36),  # the doubled bass note merged: latest offset
            (72, 0, 12),
            (55, 12, 36),
            (74, 12, 18),
            (76, 18, 24),  # 250 ticks = 6.25 steps: snapped to 6
            (77, 24, 36),
        ]
        assert [(t.step, round(t.qpm)) for t in piece.tempos] == [(0, 100)]
        assert [(ts.numerator, ts.denominator) for ts in piece.time_signatures] == [(3, 4)]

    def test_write_then_read_gives_the_same_notes_and_metadata(self, two_hands_midi, codec, tmp_path):
        (piece,) = load_pieces(two_hands_midi, codec)
        (again,) = load_pieces(write_midi(piece, tmp_path / "out.mid"), codec)
        assert again.notes.as_tuples() == piece.notes.as_tuples()
        assert again.time_signatures == piece.time_signatures
        assert [round(t.qpm, 3) for t in again.tempos] == [round(t.qpm, 3) for t in piece.tempos]

    def test_drum_tracks_are_dropped_and_counted(self, tmp_path):
        path = make_midi(tmp_path / "band.mid", [([(60, 0, 480, 80)], False), ([(36, 0, 120, 100)] * 3, True)])
        (raw,) = read_raw(path)
        assert raw.notes.pitch.tolist() == [60]
        assert raw.drum_notes_dropped == 3

    def test_drums_only_file_is_an_empty_piece(self, tmp_path, codec):
        path = DRUMS_ONLY_FIXTURE(tmp_path / "drums.mid")
        (piece,) = load_pieces(path, codec)
        assert len(piece.notes) == 0
        assert codec.encode_text(piece.notes) == ""

    def test_a_million_notes(self, tmp_path, codec):
        n = 1_000_000
        rng = np.random.default_rng(0)
        notes = np.stack([rng.integers(21, 109, n), np.arange(n) * 10, np.full(n, 40), np.full(n, 64)], axis=1).tolist()
        path = make_midi(tmp_path / "huge.mid", [(notes, False)])
        (raw,) = read_raw(path)
        piece, report = to_piece(raw, codec)
        assert len(raw.notes) == n and report.notes_out == len(piece.notes)
        assert len(piece.notes) == n - report.merged_duplicates  # 4 onsets share each step: some collide
        decoded = codec.decode(codec.encode(piece.notes, canonical=True)).notes
        for field in ("pitch", "start", "end"):
            assert np.array_equal(getattr(decoded, field), getattr(piece.notes, field))


class TestBadInput:
    @pytest.mark.parametrize(
        ("name", "content", "message"),
        [
            ("empty.mid", b"", r"'.*empty.mid' is empty \(0 bytes\)"),
            ("notes.mid", b"these are not notes\n", r"'.*notes.mid' is not a MIDI file \(no MThd header\)"),
            ("short.mid", b"MThd\x00\x00\x00\x06\x00", r"truncated MIDI file"),
            ("zero.mid", b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x00MTrk\x00\x00\x00\x04\x00\xff\x2f\x00",
             r"0 ticks per quarter"),
            ("song.wav", b"RIFF", r"unknown suffix '.wav'"),
        ],
        ids=["empty", "text-named-mid", "truncated-header", "zero-ticks-per-quarter", "unknown-suffix"],
    )  # fmt: skip
    def test_bad_files_get_a_clear_maia_error(self, tmp_path, name, content, message):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(MaiaInputError, match=message):
            read_raw(path)

    def test_truncated_midi_body(self, two_hands_midi, tmp_path):
        data = two_hands_midi.read_bytes()
        cut = tmp_path / "cut.mid"
        cut.write_bytes(data[: len(data) - 20])
        with pytest.raises(MaiaInputError, match=r"'.*cut.mid' is a damaged MIDI file"):
            read_raw(cut)

    def test_missing_file(self, tmp_path):
        with pytest.raises(MaiaInputError, match=r"does not exist"):
            read_raw(tmp_path / "nowhere.mid")

    def test_unknown_music21_corpus_work(self):
        with pytest.raises(MaiaInputError, match=r"'music21:nobody/nothing' is not in the music21 corpus"):
            read_raw("music21:nobody/nothing")

    def test_broken_musicxml(self, tmp_path):
        path = tmp_path / "broken.musicxml"
        path.write_text("<score-partwise><part><measure>")
        with pytest.raises(MaiaInputError, match=r"'.*broken.musicxml' could not be parsed"):
            read_raw(path)


class TestScores:
    def test_music21_corpus_chorale(self, codec):
        (piece,) = load_pieces("music21:bach/bwv66.6", codec)
        assert len(piece.notes) > 100
        assert piece.notes.pitch.min() >= 40 and piece.notes.pitch.max() <= 80
        assert [(ts.numerator, ts.denominator) for ts in piece.time_signatures] == [(4, 4)]

    def test_every_tune_of_an_abc_file(self, tmp_path, codec):
        path = tmp_path / "tunes.abc"
        path.write_text(TWO_TUNES_ABC)
        first, second = load_pieces(path, codec)
        # G2 B2 d2 with L:1/8 are quarter notes: G4 for 12 steps, then B4.
        assert first.notes.as_tuples()[:2] == [(67, 0, 12), (71, 12, 24)]
        assert "First tune" in first.name and "Second tune" in second.name
        assert [(t.numerator, t.denominator) for t in second.time_signatures] == [(6, 8)]
        assert len(second.notes) == 20

    def test_a_score_names_its_composer(self, tmp_path, codec):
        path = tmp_path / "minuet.abc"
        path.write_text("X:1\nT:Minuet\nC:J. S. Bach\nM:3/4\nL:1/8\nK:G\nG2 B2 d2 | g6 |]\n")
        (piece,) = load_pieces(path, codec)
        assert piece.composer == "J. S. Bach"
        assert read_raw("music21:bach/bwv66.6")[0].composer is None  # no composer in its metadata

    def test_inconsistent_repeats_are_read_as_written_and_flagged(self):
        (raw,) = read_raw("music21:bach/bwv277.krn")  # its repeat marks do not pair up
        assert raw.repeats_as_written and len(raw.notes) > 200
        assert not read_raw("music21:bach/bwv66.6")[0].repeats_as_written

    def test_humdrum_kern(self, codec):
        (piece,) = load_pieces("music21:chopin/mazurka06-2", codec)
        assert len(piece.notes) > 200

    def test_musicxml_written_by_maia_reads_back_note_for_note(self, two_hands_midi, codec, tmp_path):
        (piece,) = load_pieces(two_hands_midi, codec)
        (again,) = load_pieces(write_musicxml(piece, tmp_path / "out.musicxml"), codec)
        assert again.notes.as_tuples() == piece.notes.as_tuples()
        assert [(t.numerator, t.denominator) for t in again.time_signatures] == [(3, 4)]


class TestNotewiseText:
    def test_write_then_read_keeps_notes_and_metadata(self, two_hands_midi, codec, tmp_path):
        (piece,) = load_pieces(two_hands_midi, codec)
        piece.composer = "mozart"
        path = write_notewise([piece, piece], tmp_path / "two.txt", codec)
        pieces = load_pieces(path, codec)
        assert len(pieces) == 2
        assert pieces[1].notes.as_tuples() == piece.notes.as_tuples()
        assert pieces[0].composer == "mozart"
        assert pieces[0].time_signatures == piece.time_signatures

    def test_unknown_word_names_file_line_and_position(self, tmp_path):
        path = tmp_path / "bad.txt"
        path.write_text("# name: x\np60 wait4 endp60\np61 wiat4 endp61\n")
        with pytest.raises(MaiaTokenError, match=r"unknown word 'wiat4' at position 1 of '.*bad.txt' line 3"):
            read_raw(path, NotewiseCodec())

    def test_malformed_metadata_line(self, tmp_path):
        path = tmp_path / "bad.txt"
        path.write_text("# tempo: fast\np60 wait4 endp60\n")
        with pytest.raises(MaiaInputError, match=r"line 1: '# tempo: fast' should read '# tempo: STEP QPM'"):
            read_raw(path)


class TestHardening:
    """Bad metadata, headers and output paths: one clear MaiaInputError naming the input and the fix."""

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            ("# time_signature: 0 -3 4", "1 to 64 beats and a power-of-two denominator"),
            ("# time_signature: 0 4 0", "power-of-two denominator"),
            ("# time_signature: 0 4 3", "power-of-two denominator"),
            ("# tempo: 0 0", "a tempo above 0"),
            ("# tempo: 0 nan", "a tempo above 0"),
            ("# tempo: 0 inf", "a tempo above 0"),
            ("# tempo: 0 -120", "a tempo above 0"),
            ("# tempo: -5 120", "a step >= 0"),
        ],
        ids=["negative-beats", "zero-denominator", "odd-denominator", "zero", "nan", "inf", "negative", "step"],
    )
    def test_bad_metadata_lines_are_refused_with_their_line(self, tmp_path, line, message):
        path = tmp_path / "bad.txt"
        path.write_text(f"{line}\np60 wait12 endp60\n")
        with pytest.raises(MaiaInputError, match=message) as info:
            read_raw(path)
        assert "line 1" in str(info.value) and line in str(info.value)

    def test_impossible_tempo_and_metre_events_in_a_midi_file_are_left_out(self, tmp_path, codec):
        import symusic

        score = symusic.Score(480)
        track = symusic.Track("piano", 0, False)
        track.notes.append(symusic.Note(0, 480, 60, 80))
        score.tracks.append(track)
        score.tempos.append(symusic.Tempo(0, qpm=100.0))
        score.tempos.append(symusic.Tempo(480, mspq=0))  # 0 microseconds a quarter: an infinite tempo
        score.time_signatures.append(symusic.TimeSignature(0, 3, 4))
        (piece,) = load_pieces(score, codec)
        assert [round(t.qpm) for t in piece.tempos] == [100]
        write_musicxml(piece, tmp_path / "ok.musicxml")  # every writer accepts what reading gives

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0", "truncated MIDI file \\(no track after the header\\)"),
            (b"MThd\x8f\x13\xaa\x07\xff\x9a\xee\x01\x91\x00\x00\x00\x00\x00\x00\x00\x00\x00", "damaged MIDI header"),
        ],
        ids=["header-only", "random-bytes-after-MThd"],
    )
    def test_broken_headers_say_what_is_wrong(self, tmp_path, content, message):
        path = tmp_path / "broken.mid"
        path.write_bytes(content)
        with pytest.raises(MaiaInputError, match=message):
            read_raw(path)

    def test_a_symlink_loop_is_named_as_such(self, tmp_path):
        loop = tmp_path / "loop.mid"
        loop.symlink_to(loop)
        with pytest.raises(MaiaInputError, match="broken or looping symbolic link"):
            read_raw(loop)

    def test_writers_refuse_a_suffix_of_another_format(self, tmp_path, codec):
        (piece,) = load_pieces(DRUMS_ONLY_FIXTURE(tmp_path / "d.mid"), codec)
        with pytest.raises(MaiaInputError, match="does not name a MIDI file"):
            write_midi(piece, tmp_path / "x.musicxml")
        with pytest.raises(MaiaInputError, match="does not name a MusicXML file"):
            write_musicxml(piece, tmp_path / "x.mid")
        with pytest.raises(MaiaInputError, match="maia writes .mid"):
            write_piece(piece, tmp_path / "x.wav", codec)
        assert not list(tmp_path.glob("x.*"))

    def test_write_piece_writes_the_format_its_suffix_names(self, two_hands_midi, tmp_path, codec):
        (piece,) = load_pieces(two_hands_midi, codec)
        for name in ("a.mid", "a.musicxml", "a.mxl", "a.txt"):
            path = write_piece(piece, tmp_path / name, codec)
            (back,) = load_pieces(path, codec)
            assert back.notes.as_tuples() == piece.notes.as_tuples(), name
        assert (tmp_path / "a.mid").read_bytes()[:4] == b"MThd"
        assert (tmp_path / "a.mxl").read_bytes()[:2] == b"PK"  # compressed MusicXML is a zip

    def test_a_piece_past_the_midi_tick_limit_is_refused(self, tmp_path):
        from maia_hf.notes import NoteArray, Piece

        huge = Piece(NoteArray(np.array([60]), np.array([0]), np.array([2**28]), np.array([80])))
        with pytest.raises(MaiaInputError, match="past the 32-bit limit of a MIDI file"):
            write_midi(huge, tmp_path / "huge.mid")
        assert not (tmp_path / "huge.mid").exists()
