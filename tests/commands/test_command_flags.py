"""``maia evaluate`` and ``maia data build`` refuse impossible counts and sampling settings in one line, first."""

from __future__ import annotations

import pytest

from maia_hf.cli import main

EVALUATE = {
    "batch-size": (["--batch-size", "0"], "--batch-size must be a whole number >= 1, got 0"),
    "nll-windows": (["--nll-windows", "-1"], "--nll-windows must be a whole number >= 0 (0: all), got -1"),
    "unconstrained-pieces": (
        ["--unconstrained-pieces", "-1"], "--unconstrained-pieces must be a whole number >= 0, got -1"
    ),
    "reference-words": (
        ["--max-reference-words", "-5"], "--max-reference-words must be a whole number >= 0 (0: all), got -5"
    ),
    "tokens-per-bar": (["--tokens-per-bar", "0"], "--tokens-per-bar must be a whole number >= 1, got 0"),
    "seed": (["--seed", "-1"], "--seed must be a whole number >= 0, got -1"),
    "top-p": (["--top-p", "1.5"], "--top-p must be above 0 and at most 1 (nucleus sampling), got 1.5"),
    "temperature": (["--temperature", "0"], "--temperature must be above 0 (1 samples the model as it is), got 0.0"),
}  # fmt: skip


@pytest.mark.parametrize(("flags", "message"), EVALUATE.values(), ids=EVALUATE.keys())
def test_evaluate_counts_are_checked_first(tmp_path, capsys, monkeypatch, flags, message):
    import maia_hf.evaluation

    def no_work(*args, **kwargs):
        raise AssertionError("the evaluation started before its flags were checked")

    monkeypatch.setattr(maia_hf.evaluation, "evaluate_models", no_work)
    argv = ["evaluate", "--model", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "out"), *flags]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"maia evaluate: error: {message}"]


@pytest.mark.parametrize("processes", ["0", "-3"])
def test_data_build_needs_a_process(tmp_path, capsys, processes):
    assert main(["data", "build", "music21:bach/bwv66.6", "--out", str(tmp_path / "c"), "--num-proc", processes]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"maia data: error: --num-proc must be a whole number >= 1 (processes that parse files), got {processes}"
    ]
    assert not (tmp_path / "c").exists()
