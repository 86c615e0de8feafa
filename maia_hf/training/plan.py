"""What a run is about to do, said before any heavy work: data, model size, length, time, where it writes.

``recipes/train_gpt2.py`` prints `describe_run` before it reads a corpus or builds a model, so a run that
would take a day says so while Ctrl-C still costs nothing. `check_init_from` refuses, at the same moment,
weights that cannot be loaded (a GPT-2 id offline and not in the cache, a folder that does not exist).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import MaiaInputError

__all__ = ["REFERENCE_TOKENS_PER_SECOND", "check_init_from", "describe_run", "parameter_count"]

# Training speed of the maia-small v2 recipe (4,940,800 parameters, split sparse attention, fp32), on one
# thread of an AMD EPYC Zen 1 core: the median of its campaign's logged tokens/s. Time scales about with
# parameters x tokens, so other shapes are estimated from it; a GPU or more threads train faster.
REFERENCE_TOKENS_PER_SECOND = 800.0
REFERENCE_PARAMETERS = 4_940_800
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


def check_init_from(model_args) -> None:
    """Refuse an ``init_from`` that cannot be loaded, before the corpus is read.

    Raises:
        MaiaInputError: a path that does not exist, or a Hub id that is neither in the local Hugging Face
            cache nor reachable (``HF_HUB_OFFLINE`` set).
    """
    source = model_args.init_from
    if not source or Path(source).exists():
        return
    if source.startswith((".", "/", "~")) or not _HUB_ID.match(source):
        raise MaiaInputError(f"init_from {source!r} does not exist; give a saved model folder or a Hub id")
    from huggingface_hub import constants, try_to_load_from_cache

    cached = try_to_load_from_cache(source, "config.json")
    if constants.HF_HUB_OFFLINE and not isinstance(cached, str):
        raise MaiaInputError(
            f"init_from {source!r}: its weights are not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
            f"download them once online (`hf download {source}`) or give a local folder"
        )


def parameter_count(model_args, seq_len: int, fim: bool = False) -> int | None:
    """Parameters of the model the arguments describe (built on the meta device: no memory, no weights read).

    None for a GPT-2 transfer, whose shape is the checkpoint's.
    """
    import torch

    from ..tokenization_maia import MaiaTokenizer
    from .model import _is_maia_model, build_model

    if model_args.init_from and not _is_maia_model(model_args.init_from):
        return None
    tokenizer = MaiaTokenizer()
    if fim:
        tokenizer.add_fim_tokens()
    if model_args.init_from:  # a warm start keeps the saved model's shape
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(model_args.init_from)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    else:
        with torch.device("meta"):
            model = build_model(model_args, tokenizer, seq_len)
    return sum(p.numel() for p in model.parameters())


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    if seconds < 60:
        return "under a minute"
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h" if hours >= 1 else f"{seconds / 60:.0f} min"


def _model_line(model_args, parameters: int | None) -> str:
    if model_args.init_from and parameters is None:
        return f"model: GPT-2 transfer from {model_args.init_from} (its shape)"
    if model_args.model_type == "lstm":
        shape = f"LSTM {model_args.lstm_num_layers} x {model_args.lstm_hidden_size}"
    elif model_args.init_from:
        shape = f"warm start from {model_args.init_from}"
    else:
        shape = f"GPT, preset {model_args.preset}" + "".join(
            f", {key} {getattr(model_args, key)}"
            for key in ("n_layer", "n_head", "n_embd", "n_inner", "attn_implementation")
            if getattr(model_args, key) is not None
        )
    if getattr(model_args, "sounding_notes", False) and model_args.model_type == "gpt":
        shape += ", the sounding notes as an input"
    return f"model: {shape}, {parameters:,} parameters"


def _data_line(data_args, output_dir: Path) -> str:
    if data_args.dataset_dir:
        return f"data: the corpus in {data_args.dataset_dir}"
    built = output_dir / "data"
    if (built / "dataset_dict.json").exists():
        return f"data: the corpus built earlier in {built}"
    return f"data: built from {', '.join(data_args.data_sources)} into {built} (first, before training)"


def _steps(data_args, args, world: int) -> int | None:
    """The run's optimizer steps, or None while ``max_steps`` is -1 and the corpus is not built yet."""
    if args.max_steps >= 1:
        return args.max_steps
    corpus = Path(data_args.dataset_dir or Path(args.output_dir) / "data")
    if not (corpus / "dataset_dict.json").exists():
        return None
    from datasets import load_from_disk

    from .optimization import total_training_steps

    rows = load_from_disk(str(corpus))["train"].num_rows
    return total_training_steps(args, max(rows // (args.per_device_train_batch_size * world), 1))


def describe_run(model_args, data_args, args) -> str:
    """The plan of a run, a few lines: data, model and parameters, steps and tokens, estimated time, output.

    The time is an estimate: `REFERENCE_TOKENS_PER_SECOND` (one Zen 1 CPU thread) scaled by parameters.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    output_dir = Path(args.output_dir)
    parameters = parameter_count(model_args, data_args.seq_len, fim=bool(data_args.fim_rate))
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * world * data_args.seq_len
    steps = _steps(data_args, args, world)
    lines = [
        "train_gpt2: the plan",
        f"  {_data_line(data_args, output_dir)}",
        f"  {_model_line(model_args, parameters)}",
    ]
    how_long = (
        f"{steps:,} step{'s' * (steps != 1)}"
        if steps
        else f"{args.num_train_epochs:g} epochs (steps counted once the corpus is built)"
    )
    lines.append(
        f"  length: {how_long}, at most {per_step:,} tokens a step ({args.per_device_train_batch_size} windows x "
        f"{data_args.seq_len} tokens x {args.gradient_accumulation_steps} accumulated x {world} process(es))"
    )
    if steps and parameters:
        rate = REFERENCE_TOKENS_PER_SECOND * REFERENCE_PARAMETERS / parameters
        lines.append(
            f"  time: about {_duration(steps * per_step / rate)} on one CPU thread (an estimate: {rate:,.0f} tokens/s, "
            f"maia-small's measured {REFERENCE_TOKENS_PER_SECOND:.0f} on a Zen 1 core scaled by size; GPUs are faster)"
        )
    resume = args.resume_from_checkpoint
    start = (
        "resumes the latest checkpoint there" if resume is True else f"resumes {resume}" if resume else "starts afresh"
    )
    saves = f"a checkpoint every {args.save_steps} steps" if args.save_steps else "a checkpoint at the end"
    lines.append(f"  output: {output_dir} ({start}; {saves}; the final model in {output_dir / 'final'})")
    return "\n".join(lines)
