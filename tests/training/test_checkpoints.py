"""Atomic checkpoints, the limit on how many stay, and exact resume after a SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from training_runs import ENV, metrics, recipe

from maia_hf.errors import MaiaInputError
from maia_hf.training import MetricsLog, latest_checkpoint, resume_checkpoint, save_checkpoint
from maia_hf.training.checkpoints import check_output_dir


class OneProcess:
    """The part of `accelerate.Accelerator` that `save_checkpoint` uses, for one process."""

    is_main_process = True
    process_index = 0

    def wait_for_everyone(self):
        pass

    def save_state(self, path: str):
        Path(path).mkdir(parents=True)
        (Path(path) / "model.safetensors").write_text("weights")


def test_checkpoints_rename_into_place_and_keep_the_newest(tmp_path):
    (tmp_path / "checkpoints" / ".step-0000030.partial").mkdir(parents=True)  # left by a killed save
    for step in (10, 20, 30):
        save_checkpoint(OneProcess(), tmp_path, step, {"step": step}, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest", "step-0000020", "step-0000030"]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-0000030"
    assert json.loads((latest_checkpoint(tmp_path) / "trainer_state.json").read_text()) == {"step": 30}
    for step in (40, 50, 60):
        save_checkpoint(OneProcess(), tmp_path, step, {"step": step}, keep=None)  # None keeps them all
    assert len(list((tmp_path / "checkpoints").glob("step-*"))) == 5


def test_resume_from_checkpoint_picks_the_latest_or_the_folder_given(tmp_path):
    assert resume_checkpoint(None, tmp_path) is None and resume_checkpoint(True, tmp_path) is None  # none yet
    first = save_checkpoint(OneProcess(), tmp_path, 10, {"step": 10}, keep=None)
    save_checkpoint(OneProcess(), tmp_path, 20, {"step": 20}, keep=None)
    assert resume_checkpoint(True, tmp_path).name == "step-0000020"
    assert resume_checkpoint(str(first), tmp_path) == first
    with pytest.raises(MaiaInputError, match=r"'nowhere' is not a checkpoint \(it has no trainer_state.json\)"):
        resume_checkpoint("nowhere", tmp_path)


def test_killed_run_resumes_to_the_same_final_loss(tiny_corpus, tmp_path):
    common = ("--dataset_dir", tiny_corpus, "--num_samples", "0", "--save_steps", "10", "--eval_steps", "0")
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
        recipe(*common, "--output_dir", killed, "--resume_from_checkpoint", "true"),
        env=ENV, check=True, capture_output=True,
    )  # fmt: skip

    final_whole = [r for r in metrics(whole) if "val_loss" in r][-1]
    final_resumed = [r for r in metrics(killed) if "val_loss" in r][-1]
    assert final_resumed["step"] == final_whole["step"] == 60
    assert final_resumed["val_loss"] == pytest.approx(final_whole["val_loss"], abs=1e-6)


def test_pruning_never_deletes_the_checkpoint_just_saved_or_later_ones(tmp_path):
    for step in (100, 400):  # an earlier run's checkpoints, further along than the new one
        save_checkpoint(OneProcess(), tmp_path, step, {"step": step}, keep=None)
    save_checkpoint(OneProcess(), tmp_path, 50, {"step": 50}, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    assert names == ["step-0000050", "step-0000100", "step-0000400"]
    assert latest_checkpoint(tmp_path).name == "step-0000050"


def test_a_fresh_run_over_an_earlier_one_is_refused_unless_asked(tmp_path):
    save_checkpoint(OneProcess(), tmp_path, 30, {"step": 30}, keep=None)
    (tmp_path / "metrics.jsonl").write_text('{"step": 30, "loss": 1.0}\n')
    with pytest.raises(
        MaiaInputError, match=r"holds a run \(checkpoints up to step 30\): pass --resume_from_checkpoint"
    ):
        check_output_dir(tmp_path, resuming=False, overwrite=False)
    assert (tmp_path / "checkpoints" / "step-0000030").is_dir()  # nothing was touched
    check_output_dir(tmp_path, resuming=True, overwrite=False)  # resuming is what the folder is for
    check_output_dir(tmp_path, resuming=False, overwrite=True)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.jsonl").exists()


def test_the_recipe_refuses_a_folder_that_holds_a_run_in_one_line(tmp_path):
    save_checkpoint(OneProcess(), tmp_path, 30, {"step": 30}, keep=None)
    done = subprocess.run(
        recipe("--output_dir", str(tmp_path)),
        env=ENV, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "holds a run (checkpoints up to step 30)" in done.stderr
    assert (tmp_path / "checkpoints" / "step-0000030").is_dir()


def test_a_resumed_log_forgets_what_the_killed_run_wrote_after_its_checkpoint(tmp_path):
    lines = [{"step": 10, "loss": 3.0}, {"step": 20, "val_loss": 2.9}, {"step": 20, "loss": 2.8}, {"step": 30}]
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"step": 4'  # the kill cut the last line short
    (tmp_path / "metrics.jsonl").write_text(text)
    log = MetricsLog(tmp_path, is_main=True, fresh=False, tensorboard=False, resumed_step=20)
    log.write({"step": 30, "loss": 2.7})
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 20, 30]


class _WritesAFileWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_resume_unpickles_nothing_and_falls_back_from_a_damaged_checkpoint(tiny_corpus, tmp_path):
    import pickle

    run = tmp_path / "run"
    common = ("--dataset_dir", tiny_corpus, "--num_samples", "0", "--save_steps", "10", "--eval_steps", "0")
    subprocess.run(recipe(*common, "--output_dir", run, "--max_steps", "20"), env=ENV, check=True, capture_output=True)
    step20 = run / "checkpoints" / "step-0000020"
    assert not list((run / "checkpoints").rglob("*.pkl"))  # the loop's state is JSON, the weights safetensors
    assert (step20 / "rng_state_0.json").is_file()
    assert json.loads((step20 / "trainer_state.json").read_text())["scheduler"]["last_epoch"] == 20

    marker = tmp_path / "code-ran"
    (step20 / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(_WritesAFileWhenUnpickled(marker)))
    (step20 / "model.safetensors").write_bytes(b"truncated")
    done = subprocess.run(
        recipe(*common, "--output_dir", run, "--max_steps", "30", "--resume_from_checkpoint", "true"),
        env=ENV, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        "resumed from" in done.stdout and "step-0000010 at step 10 (the newer step-0000020 was damaged)" in done.stdout
    )
    assert not marker.exists()  # the crafted pickle was never loaded
    assert [r["step"] for r in metrics(run) if "loss" in r][-1] == 30
