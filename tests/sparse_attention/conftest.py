"""Fixtures of the sparse attention tests: FlexAttention uncompiled, on every shape, warnings afresh."""

from __future__ import annotations

import pytest

import maia_hf.sparse_attention as sparse


@pytest.fixture(autouse=True)
def uncompiled_flex(monkeypatch):
    import torch.nn.attention.flex_attention as flex

    monkeypatch.setattr(sparse, "COMPILE_FLEX", False)
    monkeypatch.setattr(sparse, "FLEX_MIN_QUERIES", 1)  # tiny shapes must reach FlexAttention too
    # Uncompiled flex still traces each new shape with dynamo (seconds each); its debug switch runs the
    # same dense reference in plain Python.
    monkeypatch.setattr(flex, "_FLEX_ATTENTION_DISABLE_COMPILE_DEBUG", True, raising=False)
    monkeypatch.setattr(sparse, "_warned", set())
