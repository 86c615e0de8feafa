"""Training under Accelerate: arguments, data order, the loop, evaluation, atomic checkpoints, exact resume.

``recipes/train_gpt2.py`` is the command (``accelerate launch recipes/train_gpt2.py --config ...``);
this package is the machinery behind it, importable and testable:

- `arguments`: `ModelArguments`, `DataArguments` and `MaiaTrainingArguments` (Hugging Face's
  names), parsed with `HfArgumentParser`: defaults < YAML recipe < command line.
- `data`: the corpus, the resumable data order (`WindowBatches`) and `collate`.
- `model`: `build_model`; `optimization`: AdamW, the schedule, the run's length;
  `accelerator`: precision and launch checks.
- `checkpoints`: atomic checkpoints and the one a run resumes from.
- `validation`: the validation likelihood and sampled continuations; `reporting`: metrics and plots.
- `loop`: `train`, cut into setup, resume, step and log-evaluate-save.
"""

from __future__ import annotations

import warnings

from .accelerator import bf16_runs_fast, make_accelerator, resolve_mixed_precision
from .arguments import DEPRECATED_KEYS, DataArguments, MaiaTrainingArguments, ModelArguments, parse_arguments
from .checkpoints import latest_checkpoint, load_checkpoint, resume_checkpoint, save_checkpoint
from .data import WindowBatches, collate, load_or_build_corpus
from .loop import TrainingRun, train
from .model import build_model
from .optimization import lr_lambda, make_optimizer, total_training_steps
from .reporting import MetricsLog, plot_losses
from .validation import evaluate_loss, write_samples

__all__ = [
    "DEPRECATED_KEYS",
    "DataArguments",
    "MaiaTrainingArguments",
    "MetricsLog",
    "ModelArguments",
    "TrainingRun",
    "WindowBatches",
    "bf16_runs_fast",
    "build_model",
    "collate",
    "evaluate_loss",
    "latest_checkpoint",
    "load_checkpoint",
    "load_or_build_corpus",
    "lr_lambda",
    "make_accelerator",
    "make_optimizer",
    "parse_arguments",
    "plot_losses",
    "resolve_mixed_precision",
    "resume_checkpoint",
    "save_checkpoint",
    "total_training_steps",
    "train",
    "write_samples",
]

# Names of the previous release, still importable (with a FutureWarning) until the next one.
_RENAMED = {"TrainArguments": "MaiaTrainingArguments"}


def __getattr__(name: str):
    if name in _RENAMED:
        new = _RENAMED[name]
        warnings.warn(f"{name!r} is deprecated: use {new!r}", FutureWarning, stacklevel=2)
        return globals()[new]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
