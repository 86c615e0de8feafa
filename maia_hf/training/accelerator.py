"""The `accelerate.Accelerator` a run trains under: its precision, and the launch mistakes it refuses."""

from __future__ import annotations

import os

import torch

from ..errors import MaiaInputError

__all__ = ["bf16_runs_fast", "make_accelerator", "resolve_mixed_precision"]


def bf16_runs_fast() -> bool:
    """Whether bf16 autocast is faster than fp32 here: a CUDA device with bf16, or a CPU with bf16 units.

    On a CPU without AVX512-BF16 or AMX, bf16 autocast emulates the format and runs several times
    slower than fp32, so the automatic choice is fp32 there.
    """
    use_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    if torch.cuda.is_available() and not use_cpu:
        return torch.cuda.is_bf16_supported()
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def resolve_mixed_precision(bf16: bool | None, fp16: bool) -> str:
    """Accelerate's ``mixed_precision`` for the ``bf16`` / ``fp16`` switches (bf16 None: where it runs fast).

    Example:

    ```python
    >>> from maia_hf.training import resolve_mixed_precision
    >>> [resolve_mixed_precision(bf16, fp16) for bf16, fp16 in [(True, False), (False, True), (False, False)]]
    ['bf16', 'fp16', 'no']

    ```
    """
    if bf16 and fp16:
        raise MaiaInputError("bf16 and fp16 are both true; choose one (bf16 where the hardware has it)")
    if fp16:
        return "fp16"
    if bf16 is None:
        bf16 = bf16_runs_fast()
    return "bf16" if bf16 else "no"


def make_accelerator(args):
    """The Accelerator for ``args`` (`MaiaTrainingArguments`), after checking the launch really is distributed.

    Raises:
        MaiaInputError: processes launched that each train alone, or a DeepSpeed launch that
            Accelerate turned into plain DDP (``ACCELERATE_USE_CPU``).
    """
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    handlers = [InitProcessGroupKwargs(backend="gloo")] if args.deepspeed_gloo else []
    precision = resolve_mixed_precision(args.bf16, args.fp16)
    accelerator = Accelerator(
        mixed_precision=precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        kwargs_handlers=handlers,
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise MaiaInputError(
            f"{launched} processes were launched but each trains alone (world size {accelerator.num_processes}): "
            "on a CPU machine launch with ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N"
        )
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None and os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        raise MaiaInputError(
            "launched with a DeepSpeed config, but Accelerate set up plain DDP because ACCELERATE_USE_CPU is set: "
            "on a CPU machine unset ACCELERATE_USE_CPU and launch with DS_ACCELERATOR=cpu and --deepspeed_gloo true"
        )
    how = f"DeepSpeed ZeRO stage {plugin.zero_stage}" if plugin else accelerator.distributed_type.value
    accelerator.print(
        f"training with {accelerator.num_processes} process(es), {how}, on {accelerator.device}, "
        f"mixed precision {precision}"
    )
    return accelerator
