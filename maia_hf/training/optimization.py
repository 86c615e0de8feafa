"""AdamW with decoupled weight decay, the warm-up + cosine schedule, and the run's length in steps."""

from __future__ import annotations

import math

import torch

from ..errors import MaiaInputError

__all__ = ["lr_lambda", "make_optimizer", "parameter_groups", "total_training_steps"]


def parameter_groups(model) -> tuple[list[str], list[str]]:
    """Names of the trained parameters with weight decay (matrices, embeddings) and without (biases, norms)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (decay if parameter.dim() >= 2 else no_decay).append(name)
    return decay, no_decay


def make_optimizer(model, args) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices and embeddings, not on biases and layer norms.

    Args:
        model (`torch.nn.Module`): the model to train.
        args (`MaiaTrainingArguments`): ``learning_rate``, ``weight_decay`` and ``adam_beta2``.
    """
    parameters = dict(model.named_parameters())
    decay, no_decay = ([parameters[name] for name in names] for names in parameter_groups(model))
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.learning_rate, betas=(0.9, args.adam_beta2))


def lr_lambda(args, total_steps: int | None = None):
    """Linear warm-up to the peak, then cosine decay to ``min_lr_ratio`` of it at the last step.

    Args:
        args (`MaiaTrainingArguments`): ``warmup_steps`` and ``min_lr_ratio``.
        total_steps (`int`, *optional*): the run's length (default: ``args.max_steps``; see
            `total_training_steps` where that is -1).

    Example:

    ```python
    >>> from maia_hf.training import MaiaTrainingArguments, lr_lambda
    >>> factor = lr_lambda(MaiaTrainingArguments(warmup_steps=10, min_lr_ratio=0.1), total_steps=100)
    >>> round(factor(4), 3), round(factor(9), 3), round(factor(100), 3)
    (0.5, 1.0, 0.1)

    ```
    """
    total = args.max_steps if total_steps is None else total_steps

    def factor(step: int) -> float:
        if step < args.warmup_steps:
            return (step + 1) / max(1, args.warmup_steps)
        progress = min(1.0, (step - args.warmup_steps) / max(1, total - args.warmup_steps))
        return args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def total_training_steps(args, batches_per_epoch: int) -> int:
    """``max_steps``, or with ``max_steps`` -1 the optimizer steps in ``num_train_epochs`` epochs.

    Args:
        args (`MaiaTrainingArguments`): ``max_steps``, ``num_train_epochs``, ``gradient_accumulation_steps``.
        batches_per_epoch (`int`): micro-batches per process in one epoch (`WindowBatches.per_epoch`).

    Example:

    ```python
    >>> from maia_hf.training import MaiaTrainingArguments, total_training_steps
    >>> total_training_steps(MaiaTrainingArguments(num_train_epochs=1.5, gradient_accumulation_steps=2), 10)
    8
    >>> total_training_steps(MaiaTrainingArguments(max_steps=60, num_train_epochs=1.5), 10)
    60

    ```
    """
    if args.max_steps >= 0:
        return args.max_steps
    if args.num_train_epochs <= 0:
        raise MaiaInputError(
            f"max_steps -1 trains num_train_epochs epochs, but num_train_epochs is {args.num_train_epochs}; "
            "give num_train_epochs > 0 or max_steps"
        )
    steps_per_epoch = max(batches_per_epoch // args.gradient_accumulation_steps, 1)
    return math.ceil(args.num_train_epochs * steps_per_epoch)
