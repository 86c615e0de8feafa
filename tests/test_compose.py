"""The `maia generate` / `maia lacrimosa` jobs and rendering, end to end on a tiny model."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import symusic
from helpers import TINY_GPT

from maia_hf.cli import main
from maia_hf.codec import NoteArray, NotewiseCodec, Piece
from maia_hf.compose import default_model, load_model
from maia_hf.errors import MaiaInputError, MaiaRenderError
from maia_hf.generation import read_prompt
from maia_hf.io import load_pieces
from maia_hf.render import piano_roll, render_wav


@pytest.fixture
def model_dir(tmp_path, tokenizer):
    import torch

    from maia_hf import MaiaConfig, MaiaForCausalLM

    torch.manual_seed(0)
    path = tmp_path / "model"
    MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **TINY_GPT)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_generate_writes_every_format(model_dir, two_hands_midi, tmp_path, capsys):
    out = tmp_path / "out" / "piece.mid"
    code = main(
        [
            "generate",
            "--model",
            str(model_dir),
            "--prompt",
            str(two_hands_midi),
            "--bars",
            "2",
            "--seed",
            "1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    for suffix in (".mid", ".musicxml", ".txt", ".png"):
        assert out.with_suffix(suffix).exists(), suffix
    score = symusic.Score(str(out))
    assert (score.time_signatures[0].numerator, score.time_signatures[0].denominator) == (3, 4)
    assert round(score.tempos[0].qpm) == 100
    printed = capsys.readouterr().out
    assert "new notes" in printed and "tokens/s" in printed
    assert ("wav" in printed) if shutil.which("fluidsynth") else ("no WAV: cannot write" in printed)


def test_generate_bounds_the_longest_note(model_dir, tokenizer, tmp_path):
    from maia_hf.io import load_pieces

    longest = {}
    for limit in ("0.5", "0"):  # 6 steps; 0: no limit
        out = tmp_path / limit / "piece.mid"
        args = ["generate", "--model", str(model_dir), "--max-new-tokens", "300", "--seed", "3", "--no-wav"]
        assert main([*args, "--max-note-quarters", limit, "--out", str(out)]) == 0
        notes = load_pieces(out.with_suffix(".txt"), tokenizer.codec)[0].notes
        longest[limit] = int((notes.end - notes.start).max())
    assert longest["0.5"] <= 7 < longest["0"]  # a step over at most, where a step's order made it wait


@pytest.mark.parametrize("candidates", ["1", "2"])
def test_lacrimosa_continues_to_thirty_bars(model_dir, tmp_path, capsys, candidates):
    args = ["lacrimosa", "--model", str(model_dir), "--out", str(tmp_path), "--no-wav", "--candidates", candidates]
    assert main(args) == 0
    score = symusic.Score(str(tmp_path / "lacrimosa.mid"))
    assert score.end() <= 30 * 6 * 480  # never past bar 30 (12/8: 6 quarters a bar, 480 ticks each)
    printed = capsys.readouterr().out
    assert "to 30 bars of 12/8" in printed
    assert ("kept candidate" in printed) == (candidates == "2")
    # By default every new onset keeps Mozart's eighth-note grid (6 steps, 240 ticks at 480 a quarter).
    assert "guidance: every onset on a 6-step grid (Mozart's), key guidance 1" in printed
    assert all(n.time % 240 == 0 for t in score.tracks for n in t.notes)


def test_lacrimosa_without_guidance_is_the_model_alone(model_dir, tmp_path, capsys):
    args = ["lacrimosa", "--model", str(model_dir), "--out", str(tmp_path), "--no-wav", "--grid", "off"]
    assert main([*args, "--key-guidance", "0"]) == 0
    assert "guidance: onsets free, no key guidance\n" in capsys.readouterr().out
    score = symusic.Score(str(tmp_path / "lacrimosa.mid"))
    assert any(n.time % 240 for t in score.tracks for n in t.notes)  # the model alone leaves the grid


def test_generate_reports_every_candidates_score_and_the_kept_one(model_dir, tmp_path, capsys):
    out = tmp_path / "piece.mid"
    args = ["generate", "--model", str(model_dir), "--bars", "1", "--seed", "0", "--no-wav", "--out", str(out)]
    assert main([*args, "--candidates", "3"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "mean log-probability per new token" in x)
    scores, kept = line.split(": ", 1)[1].split("; kept candidate ")
    scores = [float(x) for x in scores.split(", ")]
    assert len(scores) == 3 and all(x < 0 for x in scores)
    assert kept == f"{scores.index(max(scores)) + 1} of 3"


@pytest.mark.parametrize("prompt", ["p60 p64 wait24 endp60 endp64", "music21:bach/bwv66.6"], ids=["words", "corpus"])
def test_generate_continues_notewise_words_and_corpus_names(model_dir, tmp_path, prompt):
    out = tmp_path / "piece.mid"
    args = ["generate", "--model", str(model_dir), "--prompt", prompt, "--prompt-bars", "1", "--bars", "1"]
    assert main([*args, "--seed", "0", "--no-wav", "--out", str(out)]) == 0
    (piece,) = load_pieces(out.with_suffix(".txt"), NotewiseCodec())
    kept = read_prompt(prompt, prompt_bars=1)
    assert piece.notes.take(piece.notes.start < 48).as_tuples() == kept.notes.as_tuples()  # one bar of 4/4
    assert len(piece.notes) > len(kept.notes) and piece.notes.end.max() <= 96  # and one bar more


def test_default_model_is_the_packages():
    import maia_hf

    assert default_model() == Path(maia_hf.DEFAULT_MODEL) and (default_model() / "config.json").exists()


def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(MaiaInputError, match=r"model directory '.*nowhere' does not exist"):
        load_model(tmp_path / "nowhere")


def test_render_without_fluidsynth_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MaiaRenderError, match="fluidsynth is not installed; on Debian/Ubuntu: apt-get install"):
        render_wav(tmp_path / "x.mid", tmp_path / "x.wav")


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth is not installed")
def test_render_wav(tmp_path, two_hands_midi):
    wav = render_wav(two_hands_midi, tmp_path / "x.wav")
    assert wav.read_bytes()[:4] == b"RIFF" and wav.stat().st_size > 10_000


def test_piano_roll_png(tmp_path):
    piece = Piece(NoteArray.from_lists([60, 64, 67], [0, 12, 24], [12, 24, 48]))
    path = piano_roll(piece, tmp_path / "roll.png", prompt_end=24)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("command", ["generate", "lacrimosa"])
def test_ctrl_c_while_generating_writes_what_was_generated(model_dir, tmp_path, capsys, monkeypatch, command):
    """A Ctrl-C (a KeyboardInterrupt after 60 tokens) keeps the bars so far as valid files, and exits 130."""
    from maia_hf.generation.streamers import NoteStreamer

    put = NoteStreamer.put

    def put_then_interrupt(self, value):
        put(self, value)
        if self.tokens >= 60:
            raise KeyboardInterrupt

    monkeypatch.setattr(NoteStreamer, "put", put_then_interrupt)
    out = tmp_path / "out"
    args = ["--model", str(model_dir), "--seed", "0", "--no-wav"]
    if command == "generate":
        args += ["--prompt", "p60 wait12 endp60", "--bars", "8", "--out", str(out / "piece.mid")]
    else:
        args += ["--out", str(out)]
    assert main([command, *args]) == 130
    printed = capsys.readouterr().out.strip().splitlines()
    midi = out / ("piece.mid" if command == "generate" else "lacrimosa.mid")
    assert re.fullmatch(
        rf"interrupted: wrote \d+ bars? \(\d+ new notes\) to {re.escape(str(midi))} and the files beside it",
        printed[-1],
    )
    (piece,) = load_pieces(midi, NotewiseCodec())
    words = out / midi.with_suffix(".txt").name
    assert len(piece.notes) > 0 and load_pieces(words, NotewiseCodec())[0].notes.as_tuples() == piece.notes.as_tuples()
    assert (piece.notes.end > piece.notes.start).all()  # every note closed where the sampling stopped
