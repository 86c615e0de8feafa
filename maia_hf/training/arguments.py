"""The recipe's arguments: three dataclasses with Hugging Face's names, read from YAML and the command line.

Precedence is the dataclass defaults, then the YAML recipe (``--config FILE``), then ``--key value``
on the command line; a key no dataclass has is an error naming the closest known keys. Training
keys take the name `transformers.TrainingArguments` gives the same setting
(``per_device_train_batch_size``, ``eval_steps``, ``save_total_limit``, ...); maia's own settings
keep theirs. The names of earlier releases (`DEPRECATED_KEYS`) still work, with a `FutureWarning`
naming the new key; giving an old key and its new one together is an error.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MaiaInputError
from .argument_checks import check_fields, check_model_shape, check_recipe

__all__ = [
    "DEPRECATED_KEYS",
    "DataArguments",
    "MaiaTrainingArguments",
    "ModelArguments",
    "parse_arguments",
]


@dataclass
class ModelArguments:
    """Which model to train: a preset GPT (with overrides), a GPT-2 transfer, or the LSTM baseline.

    Example:

    ```python
    >>> from maia_hf.training import ModelArguments
    >>> ModelArguments(n_layer=2).preset, ModelArguments(n_layer=2).n_layer
    ('maia-seed', 2)

    ```
    """

    model_type: str = field(default="gpt", metadata={"help": "gpt (MaiaForCausalLM) or lstm (MaiaLstmForCausalLM)"})
    preset: str = field(default="maia-seed", metadata={"help": "maia-seed, gpt2-117m or gpt2-345m"})
    init_from: str | None = field(
        default=None,
        metadata={
            "help": "start from these weights: a maia model directory (a warm start: its weights, a fresh "
            "optimizer) or a GPT-2 checkpoint to transfer from (openai-community/gpt2, a path)"
        },
    )
    n_positions: int | None = field(default=None, metadata={"help": "context length (default: the preset's)"})
    n_layer: int | None = field(default=None, metadata={"help": "override the preset's layers"})
    n_head: int | None = field(default=None, metadata={"help": "override the preset's heads"})
    n_embd: int | None = field(default=None, metadata={"help": "override the preset's width"})
    n_inner: int | None = field(default=None, metadata={"help": "override the preset's inner width"})
    dropout: float = field(default=0.1, metadata={"help": "residual, embedding and attention dropout"})
    attention_dropout: float | None = field(
        default=None,
        metadata={"help": "attention dropout alone (default: --dropout); the split and flex backends need 0"},
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "sdpa, eager, maia_sparse_fixed, maia_sparse_strided"}
    )
    sparse_block: int | None = field(default=None, metadata={"help": "sparse attention block length / stride"})
    sparse_summary: int | None = field(default=None, metadata={"help": "fixed pattern: summary positions"})
    sparse_per_head_summary: bool | None = field(
        default=None, metadata={"help": "fixed pattern: a different summary sub-block per head"}
    )
    sparse_backend: str | None = field(
        default=None,
        metadata={"help": "sdpa, split or flex (docs/sparse_attention.md); split and flex need --attention_dropout 0"},
    )
    sounding_notes: bool = field(
        default=False,
        metadata={
            "help": "give each position the pitches sounding there as an input (GPT only; docs/models.md); "
            "added to a resumed or warm-started model at zero, so it goes on from where it was"
        },
    )
    lstm_hidden_size: int = field(default=512, metadata={"help": "LSTM units per layer"})
    lstm_embedding_dim: int = field(default=4, metadata={"help": "LSTM token embedding width"})
    lstm_num_layers: int = field(default=2, metadata={"help": "stacked LSTM layers"})

    def __post_init__(self):
        check_fields(self)
        check_model_shape(self)


@dataclass
class DataArguments:
    """Which corpus, and how it is cut into windows (see ``maia data build``).

    Example:

    ```python
    >>> from maia_hf.training import DataArguments
    >>> DataArguments(seq_len=128).transpositions
    '-5..6'

    ```
    """

    data_sources: list[str] = field(
        default_factory=lambda: ["music21:bach,mozart,beethoven,haydn,palestrina"],
        metadata={"help": "folders, files, music21:NAMES or hf:NAME; the default is the embedded music21 corpus"},
    )
    dataset_dir: str | None = field(default=None, metadata={"help": "a corpus built by `maia data build`"})
    seq_len: int = field(default=512, metadata={"help": "tokens per training window"})
    overlap: float = field(default=0.5, metadata={"help": "overlap of consecutive windows"})
    transpositions: str = field(default="-5..6", metadata={"help": "keys of the training copies"})
    validation_fraction: float = field(default=0.05, metadata={"help": "share of pieces held out for validation"})
    test_fraction: float = field(default=0.05, metadata={"help": "share of pieces held out for testing"})
    num_proc: int = field(default=1, metadata={"help": "processes for building the corpus"})
    fim_rate: float = field(
        default=0.0, metadata={"help": "share of training windows put in fill-in-the-middle order, in [0, 1]"}
    )
    fim_max_bars: int = field(default=4, metadata={"help": "longest fill-in-the-middle gap, in bars (>= 1)"})
    fim_order: str = field(
        default="psm",
        metadata={"help": "order of the passages: psm (prefix, suffix, middle) or spm (suffix, prefix, middle: "
                  "the middle follows the prefix, better for sparse attention); recorded in config.fim_order"},
    )  # fmt: skip

    def __post_init__(self):
        check_fields(self)


@dataclass
class MaiaTrainingArguments:
    """The loop: optimisation, schedule, evaluation, checkpoints, precision.

    Settings `transformers.TrainingArguments` also has carry its name and meaning; the defaults are
    maia's. After construction ``per_device_eval_batch_size`` is never None and
    ``resume_from_checkpoint`` is None (start afresh), True (the latest checkpoint in ``output_dir``)
    or a checkpoint folder.

    Example:

    ```python
    >>> from maia_hf.training import MaiaTrainingArguments
    >>> args = MaiaTrainingArguments(per_device_train_batch_size=8, resume_from_checkpoint="true")
    >>> args.per_device_eval_batch_size, args.resume_from_checkpoint, args.max_steps
    (8, True, -1)

    ```
    """

    output_dir: str = field(default="runs/maia", metadata={"help": "checkpoints, metrics, samples, final model"})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "windows per process per micro-batch"})
    per_device_eval_batch_size: int | None = field(
        default=None, metadata={"help": "windows per process per validation batch (default: the training one)"}
    )
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    learning_rate: float = field(default=6e-4, metadata={"help": "peak learning rate"})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay (not on biases and norms)"})
    adam_beta2: float = field(default=0.99, metadata={"help": "AdamW beta2"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0: none)"})
    num_train_epochs: float = field(default=3.0, metadata={"help": "epochs to train when max_steps is -1"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps (-1: num_train_epochs epochs)"})
    warmup_steps: int = field(default=100, metadata={"help": "linear warm-up steps"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "cosine decay floor, relative to the peak"})
    logging_steps: int = field(default=10, metadata={"help": "steps between metric lines"})
    eval_steps: int = field(default=200, metadata={"help": "steps between validation runs (0: only at the end)"})
    eval_batches: int = field(default=50, metadata={"help": "validation batches per evaluation (0: all)"})
    save_steps: int = field(default=200, metadata={"help": "steps between checkpoints (0: only at the end)"})
    save_total_limit: int | None = field(default=2, metadata={"help": "checkpoints kept on disk (None: all)"})
    num_samples: int = field(default=2, metadata={"help": "continuations written as MIDI at each evaluation"})
    sample_tokens: int = field(default=256, metadata={"help": "tokens per sampled continuation"})
    seed: int = field(default=0, metadata={"help": "random seed (data order, initialisation, dropout)"})
    bf16: bool | None = field(
        default=None,
        metadata={"help": "bf16 autocast (default: where the hardware runs it fast, a GPU or an AMX/AVX512-BF16 CPU)"},
    )
    fp16: bool = field(default=False, metadata={"help": "fp16 autocast with loss scaling"})
    torch_compile: bool = field(default=False, metadata={"help": "torch.compile the model"})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "true: the latest checkpoint in output_dir; or a checkpoint folder"}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "start afresh in an output_dir that holds a run (its checkpoints and metrics are deleted)"},
    )
    deepspeed_gloo: bool = field(default=False, metadata={"help": "init the process group with gloo (CPU DeepSpeed)"})
    stop_after: int | None = field(default=None, metadata={"help": "exit after this step (testing resume)"})
    record_data_order: bool = field(
        default=False, metadata={"help": "write each rank's training rows and final weight hash (testing DDP)"}
    )

    verbose: bool = field(
        default=False,
        metadata={"help": "show the libraries' warnings and progress bars (DeepSpeed, Accelerate, weight loading)"},
    )

    def __post_init__(self):
        self.resume_from_checkpoint = _resume_setting(self.resume_from_checkpoint)
        check_fields(self)
        if self.per_device_eval_batch_size is None:
            self.per_device_eval_batch_size = self.per_device_train_batch_size
        if self.bf16 and self.fp16:
            raise MaiaInputError("bf16 and fp16 are both true; choose one (bf16 where the hardware has it)")


def _resume_setting(value) -> bool | str | None:
    """``resume_from_checkpoint`` as None (no), True (the latest checkpoint) or a folder."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("", "false", "no", "0", "none"):
            return None
        if lowered in ("true", "yes", "1"):
            return True
    return value or None


ARGUMENT_CLASSES = (ModelArguments, DataArguments, MaiaTrainingArguments)

# Each key of an earlier release and the key that replaces it.
DEPRECATED_KEYS = {
    "batch_size": "per_device_train_batch_size",
    "beta2": "adam_beta2",
    "eval_every": "eval_steps",
    "save_every": "save_steps",
    "log_every": "logging_steps",
    "keep_checkpoints": "save_total_limit",
    "resume": "resume_from_checkpoint",
    "compile": "torch_compile",
    "mixed_precision": "bf16",
}
# mixed_precision was one choice; bf16 and fp16 are two switches (bf16 None: where it runs fast).
MIXED_PRECISION_SWITCHES = {
    "auto": {"bf16": None, "fp16": False},
    "no": {"bf16": False, "fp16": False},
    "bf16": {"bf16": True, "fp16": False},
    "fp16": {"bf16": False, "fp16": True},
}


def parse_arguments(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, MaiaTrainingArguments]:
    """Parse ``--config FILE.yaml`` and ``--key value`` overrides into the three argument dataclasses.

    Raises:
        MaiaInputError: a key in the YAML or on the command line that no dataclass has (with the
            closest known keys), an old key given with its new one, a missing or unreadable config
            file, or a value outside what its key allows (`ALLOWED`; the message says where it was given).

    Example:

    ```python
    >>> from maia_hf.training import parse_arguments
    >>> model, data, train = parse_arguments(["--max_steps", "7", "--n_layer", "2", "--seq_len", "128"])
    >>> train.max_steps, train.per_device_train_batch_size, model.n_layer, data.seq_len
    (7, 16, 2, 128)

    ```
    """
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    config_path = None
    if argv.count("--config") > 1:
        raise MaiaInputError(
            "--config is given more than once; give one recipe YAML and override keys with --key value"
        )
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
            raise MaiaInputError("--config needs a YAML file, e.g. --config recipes/configs/tiny.yaml")
        config_path = argv[i + 1]
        del argv[i : i + 2]
    defaults = {} if config_path is None else read_config(config_path)
    from_config = set(defaults)
    argv, old_keys, new_keys = _pull_deprecated(argv)
    # An old key on the command line becomes the default of its new one: the command line does not
    # give the new key too (that is an error), so the value still beats the YAML's.
    command_line = translate_deprecated(old_keys, "the command line", also_given=new_keys)
    defaults.update(command_line)
    from_config -= new_keys | set(command_line)
    parser = HfArgumentParser(ARGUMENT_CLASSES)
    _report_values_as_given(parser)
    parser.set_defaults(**defaults)
    try:
        *parsed, rest = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
        if rest:
            raise MaiaInputError(f"unexpected {' '.join(rest)!r} on the command line; give settings as --key value")
        check_recipe(*parsed)
    except MaiaInputError as exc:
        if getattr(exc, "key", None) in from_config:
            raise MaiaInputError(f"{exc} (in {config_path!r})") from None
        raise
    return tuple(parsed)


def _report_values_as_given(parser) -> None:
    """Let a number that does not parse reach its field's check (one message for YAML and command line
    alike), and turn argparse's other complaints (usage and exit) into one `MaiaInputError` line."""

    def as_given(kind):
        def convert(text: str):
            try:
                return kind(text)
            except ValueError:
                return text  # `check_fields` names the key and what it allows

        return convert

    for action in parser._actions:
        if action.type in (int, float):
            action.type = as_given(action.type)

    def error(message: str):
        raise MaiaInputError(f"{message.rstrip('.')}; see `python recipes/train_gpt2.py --help`")

    parser.error = error


def read_config(config_path: str) -> dict[str, Any]:
    """A YAML recipe's keys, checked, with deprecated keys turned into their new ones."""
    import yaml

    path = Path(config_path)
    if path.is_dir():
        raise MaiaInputError(f"config {config_path!r} is a folder; give a YAML file such as recipes/configs/tiny.yaml")
    if not path.is_file():
        raise MaiaInputError(f"config file {config_path!r} does not exist; see recipes/configs/ for the recipes")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise MaiaInputError(f"{config_path!r} is not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MaiaInputError(f"config file {config_path!r} cannot be read ({exc}); give a UTF-8 YAML file") from None
    if not isinstance(values, dict):
        raise MaiaInputError(f"{config_path!r} must be a YAML mapping of key: value lines")
    for key in values:
        _check_key(key, f"{config_path!r}")
    return translate_deprecated(values, f"{config_path!r}", stacklevel=4)


def translate_deprecated(
    values: dict[str, Any], where: str, also_given: set[str] = frozenset(), stacklevel: int = 3
) -> dict[str, Any]:
    """``values`` with each deprecated key replaced by its new one, warning once per key (the warning
    points ``stacklevel`` frames up: at the caller of `parse_arguments`).

    Raises:
        MaiaInputError: ``where`` gives an old key and its new one (in ``values`` or ``also_given``).
    """
    values = dict(values)
    for old, new in DEPRECATED_KEYS.items():
        if old not in values:
            continue
        value = values.pop(old)
        replacement = _mixed_precision_switches(value, where) if old == "mixed_precision" else {new: value}
        clash = sorted((set(values) | set(also_given)) & set(replacement))
        if clash:
            raise MaiaInputError(f"{where} gives both {old!r} and {clash[0]!r}: keep only {clash[0]!r}")
        hint = " and 'fp16'" if old == "mixed_precision" else ""
        warnings.warn(f"{old!r} is deprecated: use {new!r}{hint} (in {where})", FutureWarning, stacklevel=stacklevel)
        values.update(replacement)
    return values


def _mixed_precision_switches(value, where: str) -> dict[str, bool | None]:
    if value is False:  # YAML reads a bare `no` as false
        value = "no"
    switches = MIXED_PRECISION_SWITCHES.get(str(value).lower())
    if switches is None:
        choices = ", ".join(MIXED_PRECISION_SWITCHES)
        raise MaiaInputError(f"mixed_precision {value!r} in {where} is not one of {choices}; use bf16 / fp16")
    return switches


def _pull_deprecated(argv: list[str]) -> tuple[list[str], dict[str, str], set[str]]:
    """Check every ``--key`` of ``argv``; return argv without the deprecated ones, those (as
    key -> value text) and the keys left."""
    kept, old_keys, new_keys = [], {}, set()
    i = 0
    while i < len(argv):
        end = i + 1
        while end < len(argv) and not argv[end].startswith("--"):
            end += 1
        if not argv[i].startswith("--"):
            kept.extend(argv[i:end])
            i = end
            continue
        name, has_inline, inline = argv[i][2:].partition("=")
        key = name.replace("-", "_")
        _check_key(key, "the command line")
        if key in DEPRECATED_KEYS:
            values = [inline] if has_inline else argv[i + 1 : end]
            if len(values) > 1:
                raise MaiaInputError(f"--{name} takes one value, got {' '.join(values)!r}")
            old_keys[key] = values[0] if values else "true"  # a bare flag (--compile) means true
        else:
            new_keys.add(key)
            kept.extend(argv[i:end])
        i = end
    return kept, old_keys, new_keys


def _known_keys() -> list[str]:
    return sorted(f.name for cls in ARGUMENT_CLASSES for f in dataclasses.fields(cls))


def _check_key(key: str, where: str) -> None:
    if key == "help" or key in DEPRECATED_KEYS:
        return
    known = _known_keys()
    if key not in known:
        close = difflib.get_close_matches(key, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `python recipes/train_gpt2.py --help`"
        raise MaiaInputError(f"unknown key {key!r} in {where}{hint}")
