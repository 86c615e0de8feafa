"""Corpus sources: composers from metadata, folders and files; broken files; bad sources; Hugging Face datasets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from helpers import make_midi

from maia_hf.cli import main
from maia_hf.data import (
    build_dataset,
)
from maia_hf.errors import MaiaInputError

from .corpus_helpers import (
    SEQ_LEN,
    read_corpus,
    write_piece,
)


def test_composers_from_metadata_csv_then_folders_then_file_metadata(tmp_path):
    import music21

    root = tmp_path / "corpus"
    write_piece(root / "midis" / "mozart" / "listed.mid", seed=1)  # the csv names another composer
    write_piece(root / "midis" / "mozart" / "unlisted.mid", seed=2)  # the folder
    write_piece(root / "midis" / "beethoven" / "op2" / "movement1.mid", seed=3)  # a folder further up
    write_piece(root / "midis" / "various" / "nobody.mid", seed=4)  # a composer without a token
    write_piece(root / "midis" / "various" / "unnamed.mid", seed=5)  # nothing known
    with open(root / "metadata.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["composer", "title", "year", "midi", "duration"])
        writer.writerow(["Liszt", "Listed", 1850, "midis/mozart/listed.mid", 10.0])
        writer.writerow(["Nobody Known", "Nobody", 1900, "midis/various/nobody.mid", 10.0])
    score = music21.converter.parse("tinyNotation: 4/4 c4 d e f g1")
    score.insert(0, music21.metadata.Metadata())
    score.metadata.composer = "Wolfgang Amadeus Mozart"
    score.write("musicxml", fp=str(root / "midis" / "various" / "with-metadata.musicxml"))

    report = build_dataset(
        [root / "midis", "music21:bach/bwv66.6"],
        tmp_path / "out",
        seq_len=SEQ_LEN,
        transpositions=1,
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    corpus = read_corpus(tmp_path / "out")
    composer_of = {
        Path(row["source"]).name: row["composer"]
        for split in corpus.values()
        for row in split.select_columns(["source", "composer"])
    }
    assert composer_of == {
        "listed.mid": "liszt",
        "unlisted.mid": "mozart",
        "movement1.mid": "beethoven",
        "nobody.mid": "unknown",
        "unnamed.mid": "unknown",
        "with-metadata.musicxml": "mozart",
        "bwv66.6.mxl": "bach",
    }
    assert any("'Nobody Known'" in note and "<composer:unknown>" in note for note in report.remarks)
    assert "Nobody Known" in (tmp_path / "out" / "README.md").read_text()


def test_broken_files_are_reported_not_fatal(tmp_path, capsys):
    folder = tmp_path / "midis" / "chopin"
    good = write_piece(folder / "good.mid", seed=1)
    (folder / "empty.mid").write_bytes(b"")
    (folder / "text.mid").write_text("This is not a MIDI file, only text named .mid\n")
    (folder / "truncated.mid").write_bytes(good.read_bytes()[:40])
    make_midi(folder / "drums.mid", [([(36, 0, 120, 100), (38, 480, 120, 100)], True)])
    (folder / "notes.txt").write_text("a README is not music and is not read from a folder")

    out = tmp_path / "out"
    status = main(["data", "build", str(tmp_path / "midis"), "--out", str(out), "--seq-len", "32"]
                  + ["--cache-dir", str(tmp_path / "cache"), "--quiet"])  # fmt: skip
    printed = capsys.readouterr().out
    assert status == 0 and "left out (4)" in printed
    report = json.loads((out / "build_report.json").read_text())
    reasons = {Path(file).name: reason for file, reason in report["skipped"]}
    assert set(reasons) == {"empty.mid", "text.mid", "truncated.mid", "drums.mid"}
    assert "empty (0 bytes)" in reasons["empty.mid"]
    assert "not a MIDI file (no MThd header)" in reasons["text.mid"]
    assert "damaged MIDI file" in reasons["truncated.mid"]
    assert reasons["drums.mid"] == "no pitched notes"
    assert report["pieces"] == 1
    card = (out / "README.md").read_text()
    assert "## Left out (4)" in card and "`midis/chopin/text.mid`" in card


def test_nothing_readable_is_an_error(tmp_path, capsys):
    (tmp_path / "midis").mkdir()
    (tmp_path / "midis" / "empty.mid").write_bytes(b"")
    status = main(["data", "build", str(tmp_path / "midis"), "--out", str(tmp_path / "out"), "--quiet"]
                  + ["--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    assert status == 2 and "no piece could be read" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("does/not/exist", "does not exist; give a folder, a file, music21:NAME"),
        ("music21:no_such_composer", "names no composer, collection or work of the music21 corpus"),
        ("hf:/no/such/dataset", "could not be loaded as a dataset"),
    ],
    ids=["missing-path", "unknown-music21-name", "missing-hf-dataset"],
)
def test_bad_sources_name_the_fix(tmp_path, source, message):
    with pytest.raises(MaiaInputError, match=message):
        build_dataset([source], tmp_path / "out", cache_dir=tmp_path / "cache", progress=False)


def test_hugging_face_dataset_of_midi_bytes(tmp_path):
    from datasets import Dataset, Features, Value

    files = [write_piece(tmp_path / "files" / f"p{i}.mid", seed=40 + i) for i in range(4)]
    features = Features({"midi": Value("binary"), "composer": Value("string"), "title": Value("string")})
    rows = {
        "midi": [f.read_bytes() for f in files[:3]] + [b"not midi at all"],
        "composer": ["Chopin", "Wolfgang Amadeus Mozart", None, "Chopin"],
        "title": ["a", "b", "c", "d"],
    }
    Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "hf-midi"))

    report = build_dataset(
        [f"hf:{tmp_path / 'hf-midi'}"], tmp_path / "out", seq_len=SEQ_LEN, transpositions=1,
        cache_dir=tmp_path / "cache", progress=False,
    )  # fmt: skip
    corpus = read_corpus(tmp_path / "out")
    pieces = {(row["piece_id"], row["composer"]) for split in corpus.values() for row in split}
    assert sorted(composer for _, composer in pieces) == ["chopin", "mozart", "unknown"]
    assert [Path(file).name for file, _ in report.skipped] == ["3"]
    assert "not a MIDI file" in report.skipped[0][1] and report.skipped[0][0].startswith("hf:")


def test_hugging_face_dataset_of_paths_with_a_split(tmp_path):
    from datasets import Dataset, DatasetDict

    files = [write_piece(tmp_path / "files" / "haydn" / f"p{i}.mid", seed=50 + i) for i in range(3)]
    DatasetDict(
        {
            "train": Dataset.from_dict({"path": [f"files/haydn/{f.name}" for f in files[:2]]}),
            "test": Dataset.from_dict({"path": [str(files[2])]}),
        }
    ).save_to_disk(str(tmp_path))
    report = build_dataset(
        [f"hf:{tmp_path}:train"], tmp_path / "out", seq_len=SEQ_LEN, transpositions=1,
        cache_dir=tmp_path / "cache", progress=False,
    )  # fmt: skip
    assert report.pieces == 2
    corpus = read_corpus(tmp_path / "out")
    assert {c for split in corpus.values() for c in split["composer"]} == {"haydn"}  # the files' folder
