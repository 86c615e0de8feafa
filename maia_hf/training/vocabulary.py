"""Resume a run whose model has grown: new embedding rows, or a new input, with their optimizer state.

A run trained left to right and then continued with fill-in-the-middle windows gains the three FIM tokens
(:meth:`~maia_hf.MaiaTokenizer.add_fim_tokens`; they come last, so every old id keeps its row). The
checkpoint then holds an embedding of ``old`` rows where the model has ``new``. :func:`grown_checkpoint`
presents Accelerate with a copy of the checkpoint whose tensors of ``old`` rows (the tied embedding and the
optimizer's moments of it) have the new rows appended: the weights at the mean of the old rows, as
``resize_token_embeddings`` does, and the optimizer's moments at zero, as for a parameter not yet updated.
Step, data position, schedule and RNG are untouched, so the run goes on exactly where it was.

A run continued with ``sounding_notes: true`` gains a parameter the checkpoint lacks (the sounding-notes
input, which starts at zero): the copy holds it at the model's value, with no optimizer moments yet.
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


def _new_parameters(saved_names: set[str], model) -> dict:
    """The model's parameters the checkpoint lacks (an input added to a running campaign), by name."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad and name not in saved_names}


def _renumbered(state: dict, model, new: dict) -> dict:
    """Optimizer state of the checkpoint's parameters, renumbered for the model's groups with ``new`` in them.

    Parameters are numbered in the order of `make_optimizer`'s groups; a new one (with no moments yet,
    as for a parameter not yet updated) shifts the numbers of those after it.
    """
    from .optimization import parameter_groups

    groups = parameter_groups(model)
    old_order = [name for group in groups for name in group if name not in new]
    new_order = [name for group in groups for name in group]
    if len(state.get("param_groups", [])) != len(groups) or len(old_order) != sum(
        len(g["params"]) for g in state["param_groups"]
    ):
        return state  # not this model's optimizer: Accelerate's own check reports it
    number = {name: i for i, name in enumerate(new_order)}
    moved = {number[old_order[int(k)]]: v for k, v in state.get("state", {}).items()}
    param_groups = [
        {**g, "params": [number[name] for name in names]}
        for g, names in zip(state["param_groups"], groups, strict=True)
    ]
    return {**state, "state": moved, "param_groups": param_groups}


@contextlib.contextmanager
def grown_checkpoint(checkpoint: Path, vocab_size: int, model=None):
    """``checkpoint`` as a model of ``vocab_size`` tokens would load it (itself when nothing grew).

    Given the ``model`` being resumed, parameters it has and the checkpoint lacks (the sounding-notes
    input, :class:`~maia_hf.MaiaSoundingNotes`) join the checkpoint at the model's values (zero) with no
    optimizer moments; the rest of the optimizer state is renumbered around them.
    """
    import torch
    from safetensors.torch import load_file, save_file

    old = checkpoint_vocab_size(checkpoint)
    weights_file = Path(checkpoint) / "model.safetensors"
    grows = old is not None and old < vocab_size
    new = {}
    if model is not None and weights_file.is_file():
        from safetensors import safe_open

        with safe_open(str(weights_file), framework="pt") as f:
            new = _new_parameters(set(f.keys()), model)
    if not grows and not new:
        yield Path(checkpoint)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for entry in Path(checkpoint).iterdir():
            if entry.name not in ("model.safetensors", "optimizer.bin"):
                (Path(tmp) / entry.name).symlink_to(entry.resolve())
        weights = load_file(str(weights_file))
        if grows:
            weights = {
                k: _pad_rows(v, old, vocab_size, lambda t: t.mean(dim=0, keepdim=True)) for k, v in weights.items()
            }
        weights.update({name: p.detach().cpu().clone() for name, p in new.items()})
        save_file(weights, str(Path(tmp) / "model.safetensors"), metadata={"format": "pt"})
        optimizer = Path(checkpoint) / "optimizer.bin"
        if optimizer.is_file():
            state = torch.load(optimizer, map_location="cpu", weights_only=True)
            if grows:
                for moments in state.get("state", {}).values():
                    for key, value in moments.items():
                        if torch.is_tensor(value):
                            moments[key] = _pad_rows(value, old, vocab_size, lambda t: torch.zeros_like(t[:1]))
            if new:
                state = _renumbered(state, model, new)
            torch.save(state, Path(tmp) / "optimizer.bin")
        yield Path(tmp)
