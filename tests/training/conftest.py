"""Fixtures of the training tests: the tiny recipe's corpus, built once per session."""

from __future__ import annotations

import pytest
from training_runs import TINY


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """The tiny recipe's corpus, built once (training runs then skip the music21 parsing)."""
    from maia_hf.data import build_dataset
    from maia_hf.training import parse_arguments

    model, data, train = parse_arguments(["--config", str(TINY)])
    root = tmp_path_factory.mktemp("corpus")
    out = root / "tiny"
    build_dataset(
        data.data_sources, out, seq_len=data.seq_len, transpositions=data.transpositions,
        validation_fraction=data.validation_fraction, test_fraction=data.test_fraction, progress=False,
        cache_dir=root / "cache",
    )  # fmt: skip
    return out
