"""The recipe says what it will do before it does it, and starts nothing when given nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import REPO
from training_runs import ENV, TINY

from maia_hf.errors import MaiaInputError
from maia_hf.training import parse_arguments
from maia_hf.training.plan import check_init_from, describe_run, parameter_count


def test_no_arguments_prints_the_default_plan_and_starts_nothing(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "recipes" / "train_gpt2.py")], cwd=tmp_path, env=ENV, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stdout.startswith("train_gpt2: the plan\n") and "4,940,800 parameters" in done.stdout
    assert "3 epochs (steps counted once the corpus is built)" in done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith("train_gpt2: nothing started:")
    assert "pass --config FILE" in done.stderr and not (tmp_path / "runs").exists()  # no corpus, no folder


def test_the_plan_gives_data_size_length_time_and_output(tiny_corpus, tmp_path):
    args = parse_arguments(["--config", str(TINY), "--dataset_dir", str(tiny_corpus), "--output_dir", str(tmp_path)])
    plan = describe_run(*args)
    assert f"data: the corpus in {tiny_corpus}" in plan
    assert "model: GPT, preset maia-seed, n_layer 2, n_head 2, n_embd 64, n_inner 128, 92,928 parameters" in plan
    assert "length: 60 steps, at most 1,024 tokens a step (8 windows x 128 tokens x 1 accumulated" in plan
    assert "time: about " in plan and "an estimate" in plan
    assert f"output: {tmp_path} (starts afresh; a checkpoint every 30 steps" in plan


def test_the_plan_counts_epochs_in_a_built_corpus(tiny_corpus, tmp_path):
    from maia_hf.data import load_corpus

    argv = ["--config", str(TINY), "--dataset_dir", str(tiny_corpus), "--max_steps", "-1", "--num_train_epochs", "2"]
    plan = describe_run(*parse_arguments(argv))
    per_epoch = len(load_corpus(tiny_corpus)[0]["train"]) // 8
    assert f"length: {2 * per_epoch:,} steps" in plan


def test_parameters_are_counted_without_building_weights():
    model, data, _ = parse_arguments(["--config", str(REPO / "recipes" / "configs" / "maia-small.yaml")])
    assert parameter_count(model, data.seq_len) == 4_940_800 + 88 * 256  # the shipped shape, and its sounding notes
    model, data, _ = parse_arguments(["--config", str(REPO / "recipes" / "configs" / "gpt2-117m-transfer.yaml")])
    assert parameter_count(model, data.seq_len) is None  # the checkpoint's shape, unknown until it is read


def test_weights_that_cannot_be_loaded_are_refused_before_the_corpus(tmp_path, monkeypatch):
    from huggingface_hub import constants

    model, _, _ = parse_arguments(["--init_from", str(tmp_path / "nowhere")])
    with pytest.raises(MaiaInputError, match=r"init_from '.*nowhere' does not exist; give a saved model folder"):
        check_init_from(model)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model, _, _ = parse_arguments(["--init_from", "nobody-maia/no-such-gpt2"])
    with pytest.raises(MaiaInputError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE is set"):
        check_init_from(model)
    check_init_from(parse_arguments(["--init_from", str(tmp_path)])[0])  # a folder that exists is left to load
