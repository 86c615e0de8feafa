"""Resume a run whose vocabulary has grown: the checkpoint's embedding rows, and their optimizer state, padded.

A run trained left to right and then continued with fill-in-the-middle windows gains the three FIM tokens
(:meth:`~maia_hf.MaiaTokenizer.add_fim_tokens`; they come last, so every old id keeps its row). The
checkpoint then holds an embedding of ``old`` rows where the model has ``new``. :func:`grown_checkpoint`
presents Accelerate with a copy of the checkpoint whose tensors of ``old`` rows (the tied embedding and the
optimizer's moments of it) have the new rows appended: the weights at the mean of the old rows, as
``resize_token_embeddings`` does, and the optimizer's moments at zero, as for a parameter not yet updated.
Step, data position, schedule and RNG are untouched, so the run goes on exactly where it was.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

__all__ = ["checkpoint_vocab_size", "grown_checkpoint"]

_EMBEDDING = "transformer.wte.weight"


def checkpoint_vocab_size(checkpoint: Path) -> int | None:
    """Rows of the token embedding in ``checkpoint/model.safetensors`` (None without one)."""
    from safetensors import safe_open

    weights = Path(checkpoint) / "model.safetensors"
    if not weights.is_file():
        return None
    with safe_open(str(weights), framework="pt") as f:
        if _EMBEDDING not in f.keys():  # noqa: SIM118 (a safetensors file, not a dict)
            return None
        return int(f.get_slice(_EMBEDDING).get_shape()[0])


def _pad_rows(tensor, old: int, new: int, fill):
    import torch

    if tensor.dim() != 2 or tensor.shape[0] != old:
        return tensor
    extra = fill(tensor).expand(new - old, tensor.shape[1]).to(tensor.dtype)
    return torch.cat([tensor, extra], dim=0)


@contextlib.contextmanager
def grown_checkpoint(checkpoint: Path, vocab_size: int):
    """``checkpoint`` as a model of ``vocab_size`` tokens would load it (itself when nothing grew)."""
    import torch
    from safetensors.torch import load_file, save_file

    old = checkpoint_vocab_size(checkpoint)
    if old is None or old >= vocab_size:
        yield Path(checkpoint)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for entry in Path(checkpoint).iterdir():
            if entry.name not in ("model.safetensors", "optimizer.bin"):
                (Path(tmp) / entry.name).symlink_to(entry.resolve())
        weights = load_file(str(Path(checkpoint) / "model.safetensors"))
        weights = {k: _pad_rows(v, old, vocab_size, lambda t: t.mean(dim=0, keepdim=True)) for k, v in weights.items()}
        save_file(weights, str(Path(tmp) / "model.safetensors"), metadata={"format": "pt"})
        optimizer = Path(checkpoint) / "optimizer.bin"
        if optimizer.is_file():
            state = torch.load(optimizer, map_location="cpu", weights_only=True)
            for moments in state.get("state", {}).values():
                for key, value in moments.items():
                    if torch.is_tensor(value):
                        moments[key] = _pad_rows(value, old, vocab_size, lambda t: torch.zeros_like(t[:1]))
            torch.save(state, Path(tmp) / "optimizer.bin")
        yield Path(tmp)
