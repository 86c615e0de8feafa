"""Atomic checkpoints, and the one a run resumes from.

A checkpoint is ``output_dir/checkpoints/step-NNNNNNN/``: the model, optimizer, scheduler and RNG
states (``accelerator.save_state``; with DeepSpeed, each rank's shard), ``trainer_state.json`` (step,
epoch, batch, tokens, elapsed) and the model's ``config.json``, so that
``MaiaForCausalLM.from_pretrained(checkpoint)`` loads its weights (without DeepSpeed). It is written
to a hidden ``.step-NNNNNNN.partial`` folder and renamed once every rank has written its part, and the
``checkpoints/latest`` pointer is replaced with ``os.replace``: a run killed at any moment leaves the
previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import MaiaInputError

__all__ = [
    "check_output_dir",
    "earlier_checkpoints",
    "latest_checkpoint",
    "load_checkpoint",
    "resume_checkpoint",
    "save_checkpoint",
]


def save_checkpoint(
    accelerator, output_dir: Path, step: int, state: dict, keep: int | None, config=None, scheduler=None
) -> Path:
    """Write a checkpoint atomically: a killed run leaves either the old or the new one, never half.

    Args:
        accelerator (`accelerate.Accelerator`): saves the model, optimizer, scheduler and RNG states.
        output_dir (`Path`): the run's folder. step (`int`): the optimizer step just taken.
        state (`dict`): the loop's position, written as ``trainer_state.json``.
        keep (`int`, *optional*): checkpoints kept on disk, the newest (None: all).
        config (`PreTrainedConfig`, *optional*): the model's configuration, written as ``config.json`` so
            that the checkpoint folder loads with ``from_pretrained`` like a model directory.
        scheduler (*optional*): the learning-rate schedule, whose state goes into ``trainer_state.json``.
    """
    root = output_dir / "checkpoints"
    final = root / f"step-{step:07d}"
    partial = root / f".step-{step:07d}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    (partial / f"rng_state_{accelerator.process_index}.json").write_text(json.dumps(rng_state()))
    accelerator.wait_for_everyone()  # every rank has written its part (DeepSpeed shards) before the rename
    if accelerator.is_main_process:
        for pickled in partial.glob("*.pkl"):  # Accelerate's RNG pickles: their JSON above replaces them
            pickled.unlink()
        saved = {**state, "scheduler": _json_ready(scheduler.state_dict())} if scheduler is not None else state
        (partial / "trainer_state.json").write_text(json.dumps(saved, indent=2))
        if config is not None:
            config.save_pretrained(partial)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        pointer = root / ".latest.partial"
        pointer.write_text(final.name)
        os.replace(pointer, root / "latest")
        if keep is not None:
            _prune(root, step, keep)
    accelerator.wait_for_everyone()
    return final


def _prune(root: Path, step: int, keep: int) -> None:
    """Delete the oldest checkpoints beyond ``keep``; never one from ``step`` or later (work not yet superseded)."""
    older = sorted((_step_of(p), p) for p in root.glob("step-*") if p.is_dir() and _step_of(p) < step)
    for _, old in older[: max(0, len(older) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def _step_of(path: Path) -> int:
    try:
        return int(path.name.removeprefix("step-"))
    except ValueError:
        return -1


def check_output_dir(output_dir: Path, resuming: bool, overwrite: bool) -> None:
    """Refuse to start a fresh run over an earlier one's checkpoints (it would mix and prune them).

    Raises:
        MaiaInputError: ``output_dir`` holds checkpoints and neither resuming nor overwriting was asked.
    """
    root = Path(output_dir) / "checkpoints"
    steps = sorted(_step_of(p) for p in root.glob("step-*") if p.is_dir()) if root.is_dir() else []
    if not steps or resuming:
        return
    if overwrite:
        shutil.rmtree(root, ignore_errors=True)
        (Path(output_dir) / "metrics.jsonl").unlink(missing_ok=True)
        return
    raise MaiaInputError(
        f"{str(output_dir)!r} holds a run (checkpoints up to step {steps[-1]}): pass --resume_from_checkpoint true "
        "to continue it, --overwrite_output_dir true to start over, or another --output_dir"
    )


def earlier_checkpoints(output_dir: Path, than: Path) -> list[Path]:
    """Complete checkpoints older than ``than``, newest first: where a resume falls back to."""
    root = Path(output_dir) / "checkpoints"
    done = [p for p in root.glob("step-*") if (p / "trainer_state.json").is_file() and _step_of(p) < _step_of(than)]
    return sorted(done, key=_step_of, reverse=True)


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The checkpoint ``output_dir/checkpoints/latest`` points to, if it is complete."""
    pointer = output_dir / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    path = output_dir / "checkpoints" / pointer.read_text().strip()
    return path if (path / "trainer_state.json").is_file() else None


def resume_checkpoint(resume_from_checkpoint: bool | str | None, output_dir: Path) -> Path | None:
    """The checkpoint to resume from: None when not resuming (or none was written yet), the latest
    one for True, else the folder given.

    Raises:
        MaiaInputError: a folder that is not a complete checkpoint.
    """
    if not resume_from_checkpoint:
        return None
    if resume_from_checkpoint is True:
        return latest_checkpoint(output_dir)
    path = Path(resume_from_checkpoint)
    if not (path / "trainer_state.json").is_file():
        raise MaiaInputError(
            f"resume_from_checkpoint {str(path)!r} is not a checkpoint (it has no trainer_state.json); give a "
            f"folder like {output_dir / 'checkpoints' / 'step-0000200'}, or true for the latest"
        )
    return path


def load_checkpoint(accelerator, checkpoint: Path, scheduler=None) -> dict:
    """Restore the states ``save_checkpoint`` wrote; return the loop's position (``trainer_state.json``).

    Nothing is unpickled: the weights are safetensors, the optimizer state is read by torch's
    ``weights_only`` loader (tensors and numbers only), and the schedule and RNG states are JSON. A
    checkpoint written before the schedule was kept in JSON gets it back from the optimizer's
    ``initial_lr`` and the step (exact for the warm-up + cosine `LambdaLR`); its Accelerate pickles are
    ignored. A checkpoint of a smaller vocabulary (the run now adds the fill-in-the-middle tokens) gets
    rows for the new tokens, and one without the sounding-notes input gets it at zero
    (:func:`~maia_hf.training.vocabulary.grown_checkpoint`).
    """
    from .vocabulary import grown_checkpoint

    model = accelerator.unwrap_model(accelerator._models[0])
    vocab_size = getattr(getattr(model, "config", None), "vocab_size", 0)
    with _without_pickles(checkpoint) as folder, grown_checkpoint(folder, vocab_size or 0, model) as folder:
        accelerator.load_state(str(folder), load_kwargs={"weights_only": True})
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    if scheduler is not None:
        _restore_scheduler(scheduler, state.pop("scheduler", None), state["step"])
    rng = checkpoint / f"rng_state_{accelerator.process_index}.json"
    if rng.is_file():
        set_rng_state(json.loads(rng.read_text()))
    return state


@contextlib.contextmanager
def _without_pickles(checkpoint: Path):
    """The checkpoint as Accelerate should see it: every file but its ``*.pkl`` (linked, not copied)."""
    if not any(checkpoint.glob("*.pkl")):
        yield checkpoint
        return
    with tempfile.TemporaryDirectory() as tmp:
        for entry in checkpoint.iterdir():
            if entry.suffix != ".pkl":
                (Path(tmp) / entry.name).symlink_to(entry.resolve())
        yield Path(tmp)


def _restore_scheduler(scheduler, saved: dict | None, step: int) -> None:
    if saved is not None:
        scheduler.load_state_dict({**scheduler.state_dict(), **saved, "lr_lambdas": [None] * len(scheduler.lr_lambdas)})
        return
    groups = scheduler.optimizer.param_groups
    scheduler.base_lrs = [group.get("initial_lr", group["lr"]) for group in groups]
    scheduler.last_epoch = step
    for group, base, factor in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base * factor(step)
    scheduler._last_lr = [group["lr"] for group in groups]


def _json_ready(value):
    """A scheduler's state as JSON: functions (the lambdas) are rebuilt from the arguments, not saved."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items() if not callable(v)}
    if isinstance(value, (list, tuple)):
        return [None if callable(v) else _json_ready(v) for v in value]
    return value


def rng_state() -> dict:
    """Python's, numpy's and torch's random states (CPU and every CUDA device) as JSON-ready values."""
    import random

    import numpy as np
    import torch

    kind, keys, position, has_gauss, gauss = np.random.get_state()
    version, internal, python_gauss = random.getstate()
    state = {
        "python": [version, list(internal), python_gauss],
        "numpy": [kind, keys.tolist(), position, has_gauss, gauss],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` gave."""
    import random

    import numpy as np
    import torch

    version, internal, python_gauss = state["python"]
    random.setstate((version, tuple(internal), python_gauss))
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])
