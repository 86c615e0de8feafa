"""The corpus builder: splits, windows, transpositions, the cache, the output folder, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from maia_hf.cli import main
from maia_hf.codec import NotewiseCodec
from maia_hf.data import (
    BuildConfig,
    assign_split,
    build_dataset,
    cut_windows,
    encode_transposed,
    parse_transpositions,
    window_starts,
)
from maia_hf.errors import MaiaInputError
from maia_hf.notes import NoteArray

from .corpus_helpers import (
    KEYS,
    SEQ_LEN,
    STRIDE,
    read_corpus,
    sequences_of,
    write_piece,
)


def test_no_piece_and_no_window_crosses_splits(built):
    out, report = built
    corpus = read_corpus(out)
    assert set(corpus) == {"train", "validation", "test"} and all(len(corpus[s]) for s in corpus)
    pieces = {split: set(corpus[split]["piece_id"]) for split in corpus}
    assert sum(len(p) for p in pieces.values()) == report.pieces == 16
    assert not (pieces["train"] & pieces["validation"] or pieces["train"] & pieces["test"])
    assert not pieces["validation"] & pieces["test"]
    windows = {split: {tuple(ids) for ids in corpus[split]["input_ids"]} for split in corpus}
    assert not (windows["train"] & windows["validation"] or windows["train"] & windows["test"])
    assert not windows["validation"] & windows["test"]
    # The split is a function of the piece id alone.
    for split, ids in pieces.items():
        assert {assign_split(piece_id, 0.25, 0.25) for piece_id in ids} == {split}


def test_transpositions_stay_in_train(built):
    corpus = read_corpus(built[0])
    keys_per_piece: dict[str, set[int]] = {}
    for piece_id, transpose in zip(corpus["train"]["piece_id"], corpus["train"]["transpose"], strict=True):
        keys_per_piece.setdefault(piece_id, set()).add(transpose)
    assert all(keys == set(KEYS) for keys in keys_per_piece.values())
    assert set(corpus["validation"]["transpose"]) == set(corpus["test"]["transpose"]) == {0}


def test_assign_split_follows_the_fractions():
    splits = [assign_split(f"piece-{i}", 0.1, 0.2) for i in range(4000)]
    assert abs(splits.count("test") / 4000 - 0.2) < 0.03
    assert abs(splits.count("validation") / 4000 - 0.1) < 0.03
    assert assign_split("piece-7", 0.1, 0.2) == splits[7]  # deterministic


@pytest.mark.parametrize(
    ("n_tokens", "expected"),
    [(3, [0]), (8, [0]), (9, [0, 1]), (16, [0, 4, 8]), (17, [0, 4, 8, 9]), (19, [0, 4, 8, 11])],
    ids=["shorter", "exactly-one", "one-more", "fits-the-stride", "partial-moved-back-1", "partial-moved-back-3"],
)
def test_window_starts(n_tokens, expected):
    assert window_starts(n_tokens, seq_len=8, stride=4).tolist() == expected


@pytest.mark.parametrize("stride", [1, 3, 8])
def test_windows_cover_every_token_and_end_on_the_last(stride):
    for n in range(1, 50):
        starts = window_starts(n, 8, stride)
        covered = np.zeros(n, dtype=bool)
        for s in starts:
            covered[s : s + 8] = True
        assert covered.all() and (starts[-1] + 8 == n or (n <= 8 and len(starts) == 1))
        assert np.all(np.diff(starts) >= 1) and np.all(np.diff(starts) <= stride)


def test_cut_windows_keeps_columns_and_moves_the_last_window_back():
    import pyarrow as pa

    table = pa.table(
        {
            "piece_id": ["a", "b"],
            "composer": ["bach", "bach"],
            "source": ["a.mid", "b.mid"],
            "transpose": pa.array([0, 2], pa.int8()),
            "n_tokens": pa.array([5, 11], pa.int32()),
            "n_notes": pa.array([1, 4], pa.int32()),
            "tokens": [np.arange(5, dtype="<i4").tobytes(), np.arange(100, 111, dtype="<i4").tobytes()],
        }
    )
    windows = cut_windows(table, seq_len=6, stride=3).to_pylist()
    assert [(w["piece_id"], w["window_start"], w["input_ids"]) for w in windows] == [
        ("a", 0, [0, 1, 2, 3, 4]),  # shorter than a window: one short window
        ("b", 0, [100, 101, 102, 103, 104, 105]),
        ("b", 3, [103, 104, 105, 106, 107, 108]),
        ("b", 5, [105, 106, 107, 108, 109, 110]),  # the partial window [6, 11) moved back to end on the end
    ]
    assert windows[3]["transpose"] == 2 and windows[3]["n_tokens"] == 11


def test_windows_rebuild_each_sequence(built, tokenizer):
    corpus = read_corpus(built[0])
    for split in corpus:
        for (_, transpose), rows in sequences_of(corpus[split]).items():
            n = rows[0]["n_tokens"]
            assert [r["window_start"] for r in rows] == window_starts(n, SEQ_LEN, STRIDE).tolist()
            sequence = np.zeros(n, dtype=np.int64)
            for r in rows:
                assert len(r["input_ids"]) == min(n, SEQ_LEN)
                sequence[r["window_start"] : r["window_start"] + len(r["input_ids"])] = r["input_ids"]
            composer = rows[0]["composer"]
            assert sequence[:2].tolist() == [tokenizer.bos_token_id, tokenizer.composer_token_id(composer)]
            assert sequence[-1] == tokenizer.eos_token_id and rows[-1]["window_start"] + len(rows[-1]["input_ids"]) == n
            assert rows[0]["n_notes"] == len(tokenizer.decode_to_piece(sequence).notes)
            # The sequence is what the tokenizer writes for the file in that key.
            root = Path(json.loads((built[0] / "build_report.json").read_text())["sources"][0])
            path = root.parent / rows[0]["source"]
            assert sequence.tolist() == tokenizer.encode_score(path, composer=composer, transpose=transpose)


def test_encode_transposed_equals_the_codec_also_when_notes_fold():
    codec = NotewiseCodec()
    notes, _ = codec.canonicalize(
        NoteArray.from_lists(pitch=[21, 33, 60, 106, 108, 96], start=[0, 0, 6, 6, 12, 12], end=[12, 24, 18, 30, 24, 36])
    )
    for k in (-12, -5, 0, 3, 6, 12):
        assert encode_transposed(codec, notes, k).tolist() == codec.encode(notes, transpose=k).tolist()
    # A file with notes outside the range: transposing its pitches, then folding, as the spec says.
    unfolded = NoteArray.from_lists(pitch=[110, 60, 15], start=[0, 0, 12], end=[12, 12, 24])
    canonical, _ = codec.canonicalize(unfolded)
    for k in (-12, -5, 0, 3, 6, 12):
        expected = codec.encode(unfolded, transpose=k).tolist()
        assert encode_transposed(codec, canonical, k, unfolded).tolist() == expected


def test_parse_transpositions_and_config_errors():
    assert parse_transpositions("12") == KEYS and parse_transpositions(3) == (-1, 0, 1)
    with pytest.raises(MaiaInputError, match="number of keys"):
        parse_transpositions("twelve")
    with pytest.raises(MaiaInputError, match=r"'0': a count of keys must be at least 1 \(1 keeps only the original"):
        parse_transpositions("0")
    with pytest.raises(MaiaInputError, match="overlap"):
        BuildConfig(overlap=1.0)
    with pytest.raises(MaiaInputError, match="fractions"):
        BuildConfig(validation_fraction=0.5, test_fraction=0.5)
    assert BuildConfig(seq_len=512, overlap=0.5).stride == 256


def test_out_folder_that_is_not_a_corpus_is_left_alone(tmp_path, small_corpus):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(MaiaInputError, match="is not a corpus maia built"):
        build_dataset([small_corpus], out, cache_dir=tmp_path / "cache", progress=False)
    assert (out / "precious.txt").exists()


def test_duplicates_are_left_out_and_reported(tmp_path):
    folder = tmp_path / "midis" / "bach"
    original = write_piece(folder / "a.mid", seed=1)
    shutil.copy(original, folder / "copy.mid")
    write_piece(folder / "a.midi", seed=2)  # the same work (a) in another file
    report = build_dataset([tmp_path / "midis"], tmp_path / "out", cache_dir=tmp_path / "cache", progress=False)
    reasons = {Path(file).name: reason for file, reason in report.skipped}
    assert reasons == {
        "a.midi": "the same work as midis/bach/a.mid in another format: left out",
        "copy.mid": "same bytes as midis/bach/a.mid: left out",
    }
    assert report.pieces == 1


def test_rebuild_reads_everything_from_the_cache(small_corpus, tmp_path, monkeypatch):
    import maia_hf.data.encoding as encoding
    import maia_hf.data.pieces as pieces

    calls = {"parse": 0, "encode": 0}
    read_raw, encode = pieces.read_raw, encoding.encode_transposed

    def counting_read_raw(*args, **kwargs):
        calls["parse"] += 1
        return read_raw(*args, **kwargs)

    def counting_encode(*args, **kwargs):
        calls["encode"] += 1
        return encode(*args, **kwargs)

    monkeypatch.setattr(pieces, "read_raw", counting_read_raw)
    monkeypatch.setattr(encoding, "encode_transposed", counting_encode)
    settings = {"seq_len": SEQ_LEN, "transpositions": 2, "cache_dir": tmp_path / "cache", "progress": False}

    first = build_dataset([small_corpus], tmp_path / "first", **settings)
    sequences = sum(r.sequences for r in first.stats if r.composer == "(all)")
    assert calls == {"parse": 16, "encode": sequences} and first.files_parsed == 16

    calls.update(parse=0, encode=0)
    moved = shutil.copytree(small_corpus, tmp_path / "moved" / "midis")  # content, not paths, is the key
    again = build_dataset([moved], tmp_path / "again", **settings)
    assert calls == {"parse": 0, "encode": 0}
    assert (again.files_parsed, again.files_from_cache) == (0, 16)
    assert again.stats == first.stats
    a, b = read_corpus(tmp_path / "first"), read_corpus(tmp_path / "again")
    assert all(a[s]["input_ids"] == b[s]["input_ids"] and a[s]["piece_id"] == b[s]["piece_id"] for s in a)

    write_piece(moved / "mozart" / "sonata0.mid", seed=99)  # an edited file is parsed again, alone
    calls.update(parse=0)
    edited = build_dataset([moved], tmp_path / "again", **settings)
    assert calls["parse"] == 1 and edited.files_parsed == 1


def test_no_cache_parses_every_file_and_keeps_nothing(small_corpus, tmp_path):
    report = build_dataset(
        [small_corpus], tmp_path / "out", seq_len=SEQ_LEN, transpositions=1, use_cache=False, progress=False,
        cache_dir=tmp_path / "cache",
    )  # fmt: skip
    assert report.files_parsed == 16 and not (tmp_path / "cache").exists()


def test_cli_build_with_options(small_corpus, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["data", "build", str(small_corpus), "--out", str(out), "--seq-len", "32", "--overlap", "0.25"]
    args += ["--transpositions", "0,7", "--test-fraction", "0", "--validation-fraction", "0", "--quiet"]
    assert main(args + ["--cache-dir", str(tmp_path / "cache")]) == 0
    assert "16 files (16 parsed, 0 from the cache), 16 pieces, 0 left out" in capsys.readouterr().out
    train = read_corpus(out)["train"]
    assert set(train["transpose"]) == {0, 7} and max(len(ids) for ids in train["input_ids"]) == 32
    for start, n_tokens in zip(train["window_start"], train["n_tokens"], strict=True):
        assert start % 24 == 0 or start == n_tokens - 32  # stride 32 - 8; the last window ends on the end
    assert {0, 24, 48} <= set(train["window_start"])
