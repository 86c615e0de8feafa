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

    def __init__(self, output_dir: Path, is_main: bool, fresh: bool = True, tensorboard: bool = True):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.is_main = is_main
        if is_main and fresh:
            self.path.write_text("")
        self.writer = _tensorboard(Path(output_dir)) if is_main and tensorboard else None

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
