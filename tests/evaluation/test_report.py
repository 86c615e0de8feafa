"""The report's files: Markdown with every section, JSON, both figures, and the pieces as notewise text."""

from __future__ import annotations

import pytest


def test_the_report_files(report_dir):
    import matplotlib.image

    names = {p.relative_to(report_dir).as_posix() for p in report_dir.rglob("*") if p.is_file()}
    assert names == {
        "report.md", "report.json", "ngram_strip.png", "statistics.png",
        "samples/real.txt", "samples/tiny-gpt.txt", "samples/tiny-lstm.txt",
    }  # fmt: skip
    for png in ("ngram_strip.png", "statistics.png"):
        assert matplotlib.image.imread(report_dir / png).shape[0] > 300
    markdown = (report_dir / "report.md").read_text()
    for heading in ("Likelihood", "BLEU", "Musical statistics", "Memorisation", "Well-formedness", "Discriminator"):
        assert f"## {heading}" in markdown
    assert "![cumulated n-gram strip plot](ngram_strip.png)" in markdown and "tiny-lstm" in markdown
    assert (report_dir / "samples" / "tiny-gpt.txt").read_text().count("# name:") == 3


def test_a_report_never_lands_in_an_unrelated_folder(tmp_path):
    from maia_hf.errors import MaiaInputError
    from maia_hf.evaluation.report import check_report_dir

    check_report_dir(tmp_path / "new")  # a new folder is fine
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "report.json").write_text("{}")
    check_report_dir(tmp_path / "earlier")  # an earlier report is replaced
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("mine")
    with pytest.raises(MaiaInputError, match="already holds other files and no maia report"):
        check_report_dir(tmp_path / "other")
    with pytest.raises(MaiaInputError, match="is a file; give a folder"):
        check_report_dir(tmp_path / "other" / "thesis.tex")
    assert (tmp_path / "other" / "thesis.tex").read_text() == "mine"
