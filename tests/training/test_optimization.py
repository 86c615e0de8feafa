"""The schedule, the run's length in steps, and the automatic precision."""

from __future__ import annotations

import pytest
import torch

from maia_hf.errors import MaiaInputError
from maia_hf.training import MaiaTrainingArguments, lr_lambda, resolve_mixed_precision, total_training_steps


def test_schedule_warms_up_then_decays_to_the_floor():
    args = MaiaTrainingArguments(max_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    f = lr_lambda(args)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.55) and f(100) == pytest.approx(0.1)


def test_schedule_spans_the_epochs_when_max_steps_is_minus_one():
    args = MaiaTrainingArguments(num_train_epochs=2, warmup_steps=10, min_lr_ratio=0.1)
    total = total_training_steps(args, batches_per_epoch=50)
    assert total == 100
    f = lr_lambda(args, total)
    assert f(55) == pytest.approx(0.55) and f(100) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("epochs", "accumulation", "per_epoch", "steps"),
    [(3.0, 1, 10, 30), (0.5, 1, 9, 5), (2.0, 4, 10, 4), (1.0, 8, 3, 1)],
    ids=["whole-epochs", "half-an-epoch-rounds-up", "accumulation", "at-least-one-step-an-epoch"],
)
def test_epochs_become_optimizer_steps(epochs, accumulation, per_epoch, steps):
    args = MaiaTrainingArguments(num_train_epochs=epochs, gradient_accumulation_steps=accumulation)
    assert total_training_steps(args, per_epoch) == steps


def test_max_steps_wins_over_epochs_and_zero_epochs_is_an_error():
    assert total_training_steps(MaiaTrainingArguments(max_steps=7, num_train_epochs=100), 10) == 7
    with pytest.raises(MaiaInputError, match="num_train_epochs is 0"):
        total_training_steps(MaiaTrainingArguments(num_train_epochs=0), 10)
    with pytest.raises(MaiaInputError, match="max_steps must be -1"):
        MaiaTrainingArguments(max_steps=-2)


@pytest.mark.parametrize(
    ("cuda", "cpu_capabilities", "expected"),
    [
        (False, {"avx2": True}, "no"),  # bf16 autocast is emulated, and several times slower, on AVX2
        (False, {"avx512_f": True, "avx512_bf16": True}, "bf16"),
        (False, {"amx_bf16": True, "amx_tile": True}, "bf16"),
        (True, {"avx2": True}, "bf16"),
    ],
    ids=["avx2-cpu", "avx512-bf16-cpu", "amx-cpu", "cuda-with-bf16"],
)
def test_automatic_bf16_only_where_it_runs_fast(monkeypatch, cuda, cpu_capabilities, expected):
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: cpu_capabilities)
    assert resolve_mixed_precision(None, False) == expected
    assert resolve_mixed_precision(False, True) == "fp16" and resolve_mixed_precision(True, False) == "bf16"


def test_a_cpu_launch_on_a_gpu_machine_asks_the_cpu(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True})
    assert resolve_mixed_precision(None, False) == "no"
