"""The loop: a tiny run end to end, its validation figures, epochs, real 2-process DDP, DeepSpeed, the grid search."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import subprocess
import sys

import pytest
import torch
from helpers import REPO, TINY_GPT
from training_runs import ENV, TINY, metrics, recipe

from maia_hf.training import collate, evaluate_loss


class OneProcess:
    """The part of `accelerate.Accelerator` that `evaluate_loss` uses, for one CPU process."""

    device, process_index, num_processes = torch.device("cpu"), 0, 1

    def autocast(self):
        return contextlib.nullcontext()

    def reduce(self, tensor, reduction):
        return tensor


def test_validation_figures_are_the_likelihood_of_every_real_target(tokenizer):
    from datasets import Dataset

    from maia_hf import MaiaConfig, MaiaForCausalLM

    torch.manual_seed(0)
    model = MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **TINY_GPT))
    texts = ["p60 wait6 endp60 p64 wait6 endp64", "p67 p71 wait12 endp67 endp71", "p48 wait3 endp48 wait3"]
    rows = [tokenizer.encode_text(t, composer="bach") for t in texts]
    result = evaluate_loss(model, Dataset.from_dict({"input_ids": rows}), tokenizer, 16, 2, 0, OneProcess())
    assert model.training  # handed back in training mode

    batch = collate(rows, 16, tokenizer.pad_token_id)  # the same figures, from the labels directly
    with torch.no_grad():
        model.eval()
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    nats = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), targets.reshape(-1),
                                             ignore_index=-100, reduction="sum").item()  # fmt: skip
    tokens, notes = int((targets != -100).sum()), int(tokenizer.layout.is_note_on(targets).sum())
    assert (tokens, notes) == (sum(len(r) - 1 for r in rows), 5)
    assert sorted(result) == ["val_bits_per_note", "val_bits_per_token", "val_loss", "val_perplexity", "val_tokens"]
    assert result["val_tokens"] == tokens
    assert result["val_loss"] == pytest.approx(nats / tokens, rel=1e-5)
    assert result["val_perplexity"] == pytest.approx(math.exp(nats / tokens), rel=1e-5)
    assert result["val_bits_per_token"] == pytest.approx(nats / tokens / math.log(2), rel=1e-5)
    assert result["val_bits_per_note"] == pytest.approx(nats / notes / math.log(2), rel=1e-5)


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
    printed = done.stdout + done.stderr
    assert done.stdout.startswith("train_gpt2: the plan\n")  # said before the work
    for noise in ("Setting accelerator to CPU", "Removed shared tensor", "Writing model shards"):
        assert noise not in printed, noise  # the libraries' notes, shown with --verbose


def test_a_fim_run_records_its_order_for_infilling(tiny_corpus, tmp_path):
    out = tmp_path / "spm"
    args = ("--dataset_dir", tiny_corpus, "--output_dir", out, "--max_steps", "2", "--save_steps", "1",
            "--eval_steps", "0", "--num_samples", "0", "--fim_rate", "0.5", "--fim_order", "spm")  # fmt: skip
    done = subprocess.run(recipe(*args), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    for config in (out / "final" / "config.json", out / "checkpoints" / "step-0000002" / "config.json"):
        assert json.loads(config.read_text())["fim_order"] == "spm"
    bad = subprocess.run(recipe(*args[:-1], "backwards"), env=ENV, capture_output=True, text=True)
    assert bad.returncode == 2 and "fim_order must be one of psm or spm, got 'backwards'" in bad.stderr


def test_verbose_shows_the_libraries_notes(tiny_corpus, tmp_path):
    args = ("--dataset_dir", tiny_corpus, "--output_dir", tmp_path / "run", "--max_steps", "2", "--save_steps", "1",
            "--eval_steps", "0", "--num_samples", "0", "--verbose")  # fmt: skip
    done = subprocess.run(recipe(*args), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = done.stdout + done.stderr
    assert "Removed shared tensor" in printed and "Writing model shards" in printed
    if importlib.util.find_spec("deepspeed") is not None:  # Accelerate imports it where it is installed
        assert "Setting accelerator to CPU" in printed


def test_max_steps_minus_one_trains_num_train_epochs(tiny_corpus, tmp_path):
    from maia_hf.data import load_corpus

    out = tmp_path / "epochs"
    args = ("--dataset_dir", tiny_corpus, "--output_dir", out, "--max_steps", "-1", "--num_train_epochs", "0.5",
            "--per_device_train_batch_size", "16", "--eval_steps", "0", "--save_steps", "0",
            "--num_samples", "0")  # fmt: skip
    done = subprocess.run(recipe(*args), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    per_epoch = len(load_corpus(tiny_corpus)[0]["train"]) // 16
    assert [r["step"] for r in metrics(out) if "val_loss" in r] == [math.ceil(0.5 * per_epoch)]


def test_two_processes_share_the_work(tiny_corpus, tmp_path):
    out = tmp_path / "ddp"
    launcher = (sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--main_process_port", "29531")  # fmt: skip
    args = ("--dataset_dir", tiny_corpus, "--output_dir", out, "--max_steps", "6", "--eval_steps", "0",
            "--save_steps", "0", "--num_samples", "0", "--record_data_order", "true")  # fmt: skip
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
    args = ("--dataset_dir", tiny_corpus, "--output_dir", out, "--eval_steps", "0", "--save_steps", "2",
            "--num_samples", "0", "--deepspeed_gloo", "true", "--per_device_train_batch_size", "4")  # fmt: skip
    env = {**ENV, "DS_ACCELERATOR": "cpu"}
    done = subprocess.run(recipe(*args, "--max_steps", "4", launcher=launcher), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training with 2 process(es), DeepSpeed ZeRO stage 2, on cpu" in done.stdout
    shards = sorted(p.name for p in (out / "checkpoints" / "step-0000004").rglob("*optim_states.pt"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    resume = recipe(*args, "--max_steps", "6", "--resume_from_checkpoint", "true", launcher=launcher)
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
