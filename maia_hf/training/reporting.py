"""What a run reports: ``metrics.jsonl`` (one JSON record a line), TensorBoard scalars, the loss plot."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["MetricsLog", "plot_losses"]


class MetricsLog:
    """The run's metric records, written by the main process only.

    Args:
        output_dir (`Path`): the run's folder (``metrics.jsonl`` and ``tensorboard/`` go there).
        is_main (`bool`): whether this process writes; the others' records are dropped.
        fresh (`bool`, *optional*, defaults to True): empty ``metrics.jsonl`` first (a resumed run appends).
        resumed_step (`int`, *optional*): the step a resumed run restarts from; records after it are dropped.
        tensorboard (`bool`, *optional*, defaults to True): also log to ``tensorboard/`` where it is installed.

    Example:

    ```python
    >>> import tempfile
    >>> from pathlib import Path
    >>> from maia_hf.training import MetricsLog
    >>> log = MetricsLog(Path(tempfile.mkdtemp()), is_main=True, tensorboard=False)
    >>> log.write({"step": 10, "loss": 2.5})
    >>> log.path.read_text()
    '{"step": 10, "loss": 2.5}\\n'

    ```
    """

    def __init__(
        self, output_dir: Path, is_main: bool, fresh: bool = True, tensorboard: bool = True, resumed_step=None
    ):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.is_main = is_main
        if is_main and fresh:
            self.path.write_text("")
        elif is_main and resumed_step is not None and self.path.is_file():
            self._drop_after(resumed_step)
        self.writer = _tensorboard(Path(output_dir)) if is_main and tensorboard else None

    def _drop_after(self, step: int) -> None:
        """Forget the records a killed run wrote after its checkpoint: the resumed run writes them again."""
        steps = [(line, _step(line)) for line in self.path.read_text().splitlines()]
        kept = [line for line, at in steps if at is not None and at <= step]
        tmp = self.path.with_name(f"{self.path.name}.tmp")
        tmp.write_text("".join(f"{line}\n" for line in kept))
        tmp.replace(self.path)

    def write(self, record: dict) -> None:
        """Append ``record`` (which has a ``step``) to the file, and its numbers to TensorBoard."""
        if not self.is_main:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, record["step"])


def _step(line: str) -> int | None:
    """The record's step; None for a line that is not a record (blank, or cut short by a kill)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _tensorboard(output_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(output_dir / "tensorboard"))


def plot_losses(metrics_file: Path, out_png: Path) -> None:
    """Training and validation loss against steps, from the JSONL metrics."""
    from ..plotting import pyplot

    plt = pyplot()
    train, val = [], []
    for line in Path(metrics_file).read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            train.append((record["step"], record["loss"]))
        if "val_loss" in record:
            val.append((record["step"], record["val_loss"]))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="train", linewidth=1)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
