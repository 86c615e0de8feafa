"""A built corpus's figures: the stats command, the dataset card and the build report."""

from __future__ import annotations

import pytest

from maia_hf.cli import main
from maia_hf.data import (
    load_corpus,
)
from maia_hf.errors import MaiaInputError

from .corpus_helpers import (
    read_corpus,
    report_tokenizer_composers,
)


def test_stats_command_prints_the_table_and_draws_it(built, tmp_path, capsys):
    out, report = built
    png = tmp_path / "stats.png"
    assert main(["data", "stats", str(out), "--png", str(png)]) == 0
    printed = capsys.readouterr().out
    train = report.stats[0]
    assert (train.split, train.composer) == ("train", "(all)")
    assert "train      (all)" in printed and f"{train.windows:,}" in printed and f"{train.tokens:,}" in printed
    assert "no file left out" in printed and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert train.sequences == 12 * train.pieces
    windows = sum(len(split) for split in read_corpus(out).values())
    assert sum(r.windows for r in report.stats if r.composer == "(all)") == windows


def test_card_and_report_describe_the_build(built):
    out, report = built
    card = (out / "README.md").read_text()
    assert "| train | **(all)** |" in card and "windows of 64 tokens every 32 tokens" in card
    corpus, saved, tokenizer = load_corpus(out)
    assert saved.stats == report.stats and saved.pieces == 16
    assert tokenizer.composers == report_tokenizer_composers()
    with pytest.raises(MaiaInputError, match="is not a corpus"):
        load_corpus(out / "train")
