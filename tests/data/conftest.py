"""Fixtures of the corpus tests: a small corpus of made-up pieces, built once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from maia_hf.data import build_dataset

from .corpus_helpers import OUT_OF_RANGE, SEQ_LEN, write_piece


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    """16 pieces in composer folders (one of them nested) and a folder that names no composer."""
    root = tmp_path_factory.mktemp("corpus") / "midis"
    for i in range(4):
        write_piece(root / "Chopin" / f"nocturne{i}.mid", seed=i, n_notes=30 + 20 * i)
        write_piece(root / "mozart" / f"sonata{i}.mid", seed=10 + i)
        write_piece(root / "beethoven" / "op2" / f"movement{i}.mid", seed=20 + i)
        write_piece(root / "misc" / f"tune{i}.mid", seed=30 + i, n_notes=8, extra=OUT_OF_RANGE if i == 0 else ())
    return root


@pytest.fixture(scope="module")
def built(small_corpus, tmp_path_factory):
    """The small corpus built once (two processes), with a quarter of the pieces in each held-out split."""
    out = tmp_path_factory.mktemp("built") / "corpus"
    cache = tmp_path_factory.mktemp("cache")
    report = build_dataset(
        [small_corpus],
        out,
        seq_len=SEQ_LEN,
        overlap=0.5,
        validation_fraction=0.25,
        test_fraction=0.25,
        num_proc=2,
        cache_dir=cache,
        progress=False,
    )
    return out, report
