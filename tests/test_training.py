"""The training recipe: arguments, the loop, atomic checkpoints, exact resume, real 2-process DDP, DeepSpeed."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO

from maia_hf.errors import MaiaInputError
from maia_hf.training import TrainArguments, collate, lr_lambda, parse_arguments

TINY = REPO / "recipes" / "configs" / "tiny.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    """The tiny recipe's corpus, built once (training runs then skip the music21 parsing)."""
    from maia_hf.data import build_dataset

    model, data, train = parse_arguments(["--config", str(TINY)])
    root = tmp_path_factory.mktemp("corpus")
    out = root / "tiny"
    build_dataset(
        data.data_sources, out, seq_len=data.seq_len, transpositions=data.transpositions,
        validation_fraction=data.validation_fraction, test_fraction=data.test_fraction, progress=False,
        cache_dir=root / "cache",
    )  # fmt: skip
    return out


def recipe(*args, launcher=(sys.executable,)) -> list[str]:
    return [*launcher, str(REPO / "recipes" / "train_gpt2.py"), "--config", str(TINY), *map(str, args)]


class TestArguments:
    def test_defaults_then_yaml_then_command_line(self):
        model, data, train = parse_arguments(["--config", str(TINY), "--max_steps", "7"])
        assert train.max_steps == 7  # command line beats YAML (60)
        assert train.batch_size == 8 and model.n_layer == 2  # from the YAML
        assert train.weight_decay == TrainArguments().weight_decay  # a default the YAML leaves alone

    def test_unknown_yaml_key(self, tmp_path):
        config = tmp_path / "bad.yaml"
        config.write_text("max_step: 10\n")
        with pytest.raises(MaiaInputError, match=r"unknown key 'max_step' in '.*bad.yaml'; did you mean max_steps"):
            parse_arguments(["--config", str(config)])

    def test_unknown_command_line_key(self):
        with pytest.raises(MaiaInputError, match=r"unknown key 'lerning_rate' in the command line; did you mean"):
            parse_arguments(["--config", str(TINY), "--lerning_rate", "0.1"])

    def test_missing_config_file(self):
        with pytest.raises(MaiaInputError, match="config file 'nope.yaml' does not exist"):
            parse_arguments(["--config", "nope.yaml"])

    @pytest.mark.parametrize(
        "name",
        [
            "maia-seed",
            "maia-small",
            "lstm-baseline",
            "gpt2-117m-transfer",
            "gpt2-345m-transfer",
            "sparse-fixed-4k",
            "tiny",
        ],
    )
    def test_every_recipe_config_parses(self, name):
        parse_arguments(["--config", str(REPO / "recipes" / "configs" / f"{name}.yaml")])


def test_schedule_warms_up_then_decays_to_the_floor():
    args = TrainArguments(max_steps=100, warmup_steps=10, min_lr_ratio=0.1)
    f = lr_lambda(args)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.55) and f(100) == pytest.approx(0.1)


def test_collate_masks_padding_out_of_the_loss():
    batch = collate([[2, 5, 6], [2, 7]], seq_len=4, pad_id=0)
    assert batch["input_ids"].tolist() == [[2, 5, 6, 0], [2, 7, 0, 0]]
    assert batch["labels"].tolist() == [[2, 5, 6, -100], [2, 7, -100, -100]]


def test_tiny_run_trains_and_saves(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        recipe("--dataset_dir", tiny_corpus, "--output_dir", out), env=ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = metrics(out)
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses[-1] < losses[0] - 0.5  # it learns
    evals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in evals] == [30, 60] and evals[-1]["val_bits_per_note"] > evals[-1]["val_bits_per_token"]
    for name in ("final/model.safetensors", "final/tokenizer.json", "loss.png", "samples/step-0000060-0.mid"):
        assert (out / name).exists(), name
    assert (out / "checkpoints" / "latest").read_text() == "step-0000060"


def test_killed_run_resumes_to_the_same_final_loss(tiny_corpus, tmp_path):
    common = ("--dataset_dir", tiny_corpus, "--num_samples", "0", "--save_every", "10", "--eval_every", "0")
    whole = tmp_path / "whole"
    subprocess.run(recipe(*common, "--output_dir", whole), env=ENV, check=True, capture_output=True)

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        recipe(*common, "--output_dir", killed), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    while not (killed / "checkpoints" / "step-0000030").exists() and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    latest = (killed / "checkpoints" / "latest").read_text()
    assert (killed / "checkpoints" / latest / "trainer_state.json").exists()  # never a torn checkpoint
    subprocess.run(
        recipe(*common, "--output_dir", killed, "--resume", "true"), env=ENV, check=True, capture_output=True
    )

    final_whole = [r for r in metrics(whole) if "val_loss" in r][-1]
    final_resumed = [r for r in metrics(killed) if "val_loss" in r][-1]
    assert final_resumed["step"] == final_whole["step"] == 60
    assert final_resumed["val_loss"] == pytest.approx(final_whole["val_loss"], abs=1e-6)


def test_two_processes_share_the_work(tiny_corpus, tmp_path):
    out = tmp_path / "ddp"
    launcher = (sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--main_process_port", "29531")  # fmt: skip
    args = ("--dataset_dir", tiny_corpus, "--output_dir", out, "--max_steps", "6", "--eval_every", "0",
            "--save_every", "0", "--num_samples", "0", "--record_data_order", "true")  # fmt: skip
    done = subprocess.run(
        recipe(*args, launcher=launcher), env={**ENV, "ACCELERATE_USE_CPU": "1"}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    for rows0, rows1 in zip(ranks[0]["rows"], ranks[1]["rows"], strict=True):
        assert rows0 and not set(rows0) & set(rows1)  # each step, the two ranks saw different windows
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]  # and ended with the same weights


@pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed (pip install '.[deepspeed]')"
)
def test_deepspeed_zero2_on_cpu(tiny_corpus, tmp_path):
    """Really DeepSpeed (not DDP under another name): ZeRO-2 shards the optimizer state per rank; resume works."""
    out = tmp_path / "zero2"
    zero2 = REPO / "recipes" / "accelerate_configs" / "deepspeed_zero2.yaml"
    launcher = (sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(zero2),
                "--main_process_port", "29532")  # fmt: skip
    args = ("--dataset_dir", tiny_corpus, "--output_dir", out, "--eval_every", "0", "--save_every", "2",
            "--num_samples", "0", "--deepspeed_gloo", "true", "--batch_size", "4")  # fmt: skip
    env = {**ENV, "DS_ACCELERATOR": "cpu"}
    done = subprocess.run(recipe(*args, "--max_steps", "4", launcher=launcher), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training with 2 process(es), DeepSpeed ZeRO stage 2, on cpu" in done.stdout
    shards = sorted(p.name for p in (out / "checkpoints" / "step-0000004").rglob("*optim_states.pt"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    resume = recipe(*args, "--max_steps", "6", "--resume", "true", launcher=launcher)
    again = subprocess.run(resume, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stdout and "at step 4" in again.stdout
    assert [r["step"] for r in metrics(out) if "val_loss" in r] == [4, 6] and (out / "final" / "config.json").exists()
    # ACCELERATE_USE_CPU silently turns a DeepSpeed launch into DDP: the recipe refuses, naming the fix.
    env["ACCELERATE_USE_CPU"] = "1"
    ddp = subprocess.run(recipe(*args, "--max_steps", "2", launcher=launcher), env=env, capture_output=True, text=True)
    assert ddp.returncode != 0 and "unset ACCELERATE_USE_CPU" in ddp.stderr


class TestGridSearch:
    GRID = REPO / "recipes" / "grid_search.py"

    def test_every_cell_reports_throughput_and_validation_loss(self, tmp_path):
        out = tmp_path / "grid"
        command = [sys.executable, str(self.GRID), "--config", str(TINY), "--seq_lens", "64", "--batch_sizes", "2,4",
                   "--max_steps", "3", "--out", str(out)]  # fmt: skip
        env = {**ENV, "MAIA_CACHE": str(tmp_path / "cache")}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        cells = json.loads((out / "grid.json").read_text())["cells"]
        assert [(c["seq_len"], c["batch_size"], c["steps"], c["tokens"]) for c in cells] == [
            (64, 2, 3, 384), (64, 4, 3, 768)
        ]  # fmt: skip
        for cell in cells:
            assert cell["tokens_per_second"] > 0 and 0 < cell["val_loss"] < 10
        assert "| 64 | 4 | 3 | 768 |" in done.stdout and (out / "grid.png").stat().st_size > 0

    def test_an_unknown_key_fails_before_any_run(self, tmp_path):
        command = [sys.executable, str(self.GRID), "--config", str(TINY), "--lerning_rate", "0.1", "--out",
                   str(tmp_path / "grid")]  # fmt: skip
        done = subprocess.run(command, env=ENV, capture_output=True, text=True)
        assert done.returncode == 2 and "unknown key 'lerning_rate'" in done.stderr
        assert not (tmp_path / "grid" / "grid.json").exists()
