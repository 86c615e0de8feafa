"""What each key of the recipe accepts, checked once, before any corpus is read or model built.

`ALLOWED` maps every field of `ModelArguments`, `DataArguments` and `MaiaTrainingArguments` to the kind
of value it takes and its range; `check_fields` runs from each dataclass's ``__post_init__``, so a
recipe, the command line and Python code get the same one-line message naming the key, the value
given and what is allowed (``per_device_train_batch_size must be a whole number >= 1, got 8.5``).
`check_recipe` checks what depends on several dataclasses at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from ..configuration_maia import PRESETS, SPARSE_BACKENDS
from ..errors import MaiaInputError

__all__ = ["ALLOWED", "Allowed", "check_fields", "check_recipe", "invalid"]

SEED_LIMIT = 2**32 - 1  # numpy's seeds, which `accelerate.utils.set_seed` sets too
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager", "maia_sparse_fixed", "maia_sparse_strided")


class Allowed(NamedTuple):
    """What one key accepts.

    Attributes:
        kind (`type`): ``int``, ``float``, ``bool``, ``str`` or ``list`` (a list of strings).
        test (`Callable`, *optional*): True for a value of that kind in range.
        words (`str`): what is allowed, as the message says it (``"a whole number >= 1"``).
        optional (`bool`): None (YAML ``null``) is allowed too.
    """

    kind: type
    test: Callable[[Any], bool] | None
    words: str
    optional: bool = False


def whole(low: int | None = None, high: int | None = None, optional: bool = False, words: str = "") -> Allowed:
    """A whole number in ``[low, high]`` (None: no bound)."""
    if not words:
        words = "a whole number" + (f" >= {low}" if high is None else f" from {low} to {high:,}")
    return Allowed(int, lambda v: (low is None or v >= low) and (high is None or v <= high), words, optional)


def number(low: float, high: float | None = None, *, open_low=False, open_high=False, optional=False) -> Allowed:
    """A finite number between ``low`` and ``high`` (each end closed unless said open)."""
    if high is None:
        said = f"a number {'>' if open_low else '>='} {low:g}"
    else:
        said = f"a number in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"

    def test(v: float) -> bool:
        above = v > low if open_low else v >= low
        below = high is None or (v < high if open_high else v <= high)
        return above and below

    return Allowed(float, test, said, optional)


def choice(*options: str, optional: bool = False) -> Allowed:
    *others, last = options
    return Allowed(str, lambda v: v in options, f"one of {', '.join(others)} or {last}", optional)


SWITCH = Allowed(bool, None, "true or false")
OPTIONAL_SWITCH = Allowed(bool, None, "true, false or null (automatic)", optional=True)
TEXT = Allowed(str, bool, "a non-empty string")
OPTIONAL_TEXT = Allowed(str, bool, "a non-empty string or null", optional=True)
FRACTION = number(0, 1, open_high=True)  # a dropout, an overlap, a held-out share: below 1
POSITIVE = whole(1)
OPTIONAL_POSITIVE = whole(1, optional=True, words="a whole number >= 1 or null (the default)")
COUNT = whole(0)

ALLOWED: dict[str, Allowed] = {
    # Model arguments
    "model_type": choice("gpt", "lstm"),
    "preset": choice(*PRESETS),
    "init_from": OPTIONAL_TEXT,
    "n_positions": OPTIONAL_POSITIVE,
    "n_layer": OPTIONAL_POSITIVE,
    "n_head": OPTIONAL_POSITIVE,
    "n_embd": OPTIONAL_POSITIVE,
    "n_inner": OPTIONAL_POSITIVE,
    "dropout": FRACTION,
    "attention_dropout": number(0, 1, open_high=True, optional=True),
    "attn_implementation": choice(*ATTENTION_IMPLEMENTATIONS, optional=True),
    "sparse_block": OPTIONAL_POSITIVE,
    "sparse_summary": OPTIONAL_POSITIVE,
    "sparse_per_head_summary": OPTIONAL_SWITCH,
    "sparse_backend": choice(*SPARSE_BACKENDS, optional=True),
    "sounding_notes": SWITCH,
    "lstm_hidden_size": POSITIVE,
    "lstm_embedding_dim": POSITIVE,
    "lstm_num_layers": POSITIVE,
    # Data arguments
    "data_sources": Allowed(list, bool, "a list of sources (folders, files, music21:NAMES, hf:NAME)"),
    "dataset_dir": OPTIONAL_TEXT,
    "seq_len": whole(4),
    "overlap": FRACTION,
    "transpositions": Allowed(str, None, "a number of keys (12), a range (-5..6) or a list (0,2,-2)"),
    "validation_fraction": FRACTION,
    "test_fraction": FRACTION,
    "num_proc": POSITIVE,
    "fim_rate": number(0, 1),
    "fim_max_bars": POSITIVE,
    "fim_order": choice("psm", "spm"),
    # Training arguments
    "output_dir": TEXT,
    "per_device_train_batch_size": POSITIVE,
    "per_device_eval_batch_size": whole(1, optional=True, words="a whole number >= 1 or null (the training one)"),
    "gradient_accumulation_steps": POSITIVE,
    "learning_rate": number(0, open_low=True),
    "weight_decay": number(0),
    "adam_beta2": FRACTION,
    "max_grad_norm": number(0),
    "num_train_epochs": number(0),
    # -1 or at least 1: 0 steps would save an untrained model as if it were a result.
    "max_steps": Allowed(int, lambda v: v == -1 or v >= 1, "-1 (train num_train_epochs epochs) or a whole number >= 1"),
    "warmup_steps": COUNT,
    "min_lr_ratio": number(0, 1),
    "logging_steps": POSITIVE,
    "eval_steps": COUNT,
    "eval_batches": COUNT,
    "save_steps": COUNT,
    "save_total_limit": whole(1, optional=True, words="a whole number >= 1 or null (keep all)"),
    "num_samples": COUNT,
    "sample_tokens": POSITIVE,
    "seed": whole(0, SEED_LIMIT),
    "bf16": OPTIONAL_SWITCH,
    "fp16": SWITCH,
    "torch_compile": SWITCH,
    "resume_from_checkpoint": Allowed((bool, str), None, "true, false or a checkpoint folder", optional=True),
    "overwrite_output_dir": SWITCH,
    "deepspeed_gloo": SWITCH,
    "stop_after": whole(1, optional=True, words="a whole number >= 1 or null"),
    "record_data_order": SWITCH,
    "verbose": SWITCH,
}


def invalid(key: str, message: str) -> MaiaInputError:
    """The error for ``key``; `parse_arguments` adds where the value came from (``.key`` names it)."""
    error = MaiaInputError(message)
    error.key = key
    return error


def _shown(value) -> str:
    return "null" if value is None else repr(value) if isinstance(value, str) else str(value)


def _as_kind(value, kind):
    """``value`` as ``kind``, or None where it is not one (a YAML int for a float key is a float)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool):
        return value if bool in kinds else None
    if isinstance(value, int) and (int in kinds or float in kinds):
        return value if int in kinds else float(value)
    if isinstance(value, float) and float in kinds:
        return value if math.isfinite(value) else None
    if str in kinds and isinstance(value, (str, int, float)):
        return value if isinstance(value, str) else str(value)  # `transpositions: 12`, `output_dir: 2024`
    if list in kinds:
        items = [value] if isinstance(value, str) else value
        if isinstance(items, (list, tuple)) and all(isinstance(item, str) and item for item in items):
            return list(items)
    return None


def check_fields(arguments) -> None:
    """Check every field of a recipe dataclass against `ALLOWED`; set YAML ints given for floats as floats.

    Raises:
        MaiaInputError: a value of the wrong kind or out of range, naming the key, the value and what is allowed.
    """
    import dataclasses

    for f in dataclasses.fields(arguments):
        allowed = ALLOWED.get(f.name)  # every field has one (tested); a new field is checked once it is added
        value = getattr(arguments, f.name)
        if allowed is None or (value is None and allowed.optional):
            continue
        checked = _as_kind(value, allowed.kind)
        if checked is None or (allowed.test is not None and not allowed.test(checked)):
            raise invalid(f.name, f"{f.name} must be {allowed.words}, got {_shown(value)}")
        setattr(arguments, f.name, checked)


def check_model_shape(arguments) -> None:
    """The heads must divide the width: of the preset, or as overridden (a GPT built from a preset only)."""
    if arguments.model_type != "gpt" or arguments.init_from:
        return
    preset = PRESETS[arguments.preset]
    n_head, n_embd = arguments.n_head or preset["n_head"], arguments.n_embd or preset["n_embd"]
    if n_embd % n_head:
        fits = ", ".join(str(h) for h in range(1, min(n_embd, 64) + 1) if n_embd % h == 0)
        whose = "" if arguments.n_embd else f" (preset {arguments.preset}'s)"
        key = "n_head" if arguments.n_head else "n_embd"
        raise invalid(key, f"n_head {n_head} does not divide n_embd {n_embd}{whose}; give n_head one of {fits}")


def check_recipe(model_args, data_args, training_args) -> None:
    """What depends on several dataclasses: the context must hold a window; the data must leave a training split.

    Raises:
        MaiaInputError: naming the keys and the values that do not fit together.
    """
    from ..data.windows import parse_transpositions

    if model_args.n_positions is not None and model_args.n_positions < data_args.seq_len and not model_args.init_from:
        raise invalid(
            "n_positions", f"n_positions {model_args.n_positions} is shorter than seq_len {data_args.seq_len}; "
            "give n_positions >= seq_len (or leave it out: it defaults to seq_len)",
        )  # fmt: skip
    if data_args.validation_fraction + data_args.test_fraction >= 1:
        raise invalid(
            "validation_fraction", f"validation_fraction {data_args.validation_fraction:g} and test_fraction "
            f"{data_args.test_fraction:g} leave no pieces for training; together they must be below 1",
        )  # fmt: skip
    try:
        parse_transpositions(data_args.transpositions)
    except MaiaInputError as exc:
        raise invalid("transpositions", str(exc)) from None
    if training_args.max_steps == -1 and training_args.num_train_epochs <= 0:
        raise invalid(
            "num_train_epochs", f"num_train_epochs must be above 0 when max_steps is -1, got "
            f"{training_args.num_train_epochs:g}; give num_train_epochs > 0 or max_steps >= 1",
        )  # fmt: skip
