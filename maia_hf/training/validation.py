"""What a run measures and writes at each evaluation: the validation likelihood and a few sampled continuations."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .data import collate

__all__ = ["evaluate_loss", "write_samples"]


@torch.no_grad()
def evaluate_loss(model, dataset, tokenizer, seq_len: int, batch_size: int, max_batches: int, accelerator) -> dict:
    """Validation loss in nats per token, perplexity, bits per token and bits per note (notes = ``p`` words).

    Every process scores every ``num_processes``-th batch with maia's one likelihood function
    (`maia_hf.evaluation.likelihood.nll_sums`); the sums are added across processes before the
    summary, so the figures do not depend on the world size.

    Args:
        model: the (prepared) model. dataset (`datasets.Dataset`): validation windows.
        tokenizer (`MaiaTokenizer`): its ``layout`` tells notes apart; its pad id pads the batches.
        seq_len (`int`): the padded window length. batch_size (`int`): windows per batch.
        max_batches (`int`): batches scored at most (0: all).
        accelerator (`accelerate.Accelerator`): device, process index and the reduction.

    Returns:
        `dict`: ``val_loss``, ``val_perplexity``, ``val_bits_per_token``, ``val_bits_per_note``, ``val_tokens``.
    """
    from ..evaluation.likelihood import likelihood_summary, nll_sums

    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=accelerator.device)  # nats, tokens, notes
    rows = dataset.with_format("python")
    n_batches = math.ceil(len(rows) / batch_size)
    if max_batches:
        n_batches = min(n_batches, max_batches)
    for b in range(accelerator.process_index, n_batches, accelerator.num_processes):
        batch = collate(rows[b * batch_size : (b + 1) * batch_size]["input_ids"], seq_len, tokenizer.pad_token_id)
        input_ids, mask = batch["input_ids"].to(accelerator.device), batch["attention_mask"].to(accelerator.device)
        with accelerator.autocast():
            sums += nll_sums(model, input_ids, mask, layout=tokenizer.layout).to(sums.device)
    sums = accelerator.reduce(sums, reduction="sum")
    model.train()
    summary = likelihood_summary(*sums.tolist())
    return {
        "val_loss": summary["loss"],
        "val_perplexity": summary["perplexity"],
        "val_bits_per_token": summary["bits_per_token"],
        "val_bits_per_note": summary["bits_per_note"],
        "val_tokens": int(summary["tokens"]),
    }


def write_samples(model, tokenizer, dataset, out_dir: Path, step: int, n: int, tokens: int, seed: int) -> list[Path]:
    """Continue the openings of the first ``n`` validation windows and write them as MIDI.

    Args:
        model: the unwrapped model. tokenizer (`MaiaTokenizer`). dataset (`datasets.Dataset`): validation windows.
        out_dir (`Path`): where ``step-NNNNNNN-k.mid`` go. step (`int`): the step, for the file names.
        n (`int`): continuations. tokens (`int`): new tokens each. seed (`int`): sample ``k`` uses ``seed + k``.
    """
    from ..generation import continue_piece
    from ..io import write_midi

    paths = []
    model.eval()
    rows = dataset.with_format("python")
    for i in range(min(n, len(rows))):
        ids = rows[i]["input_ids"][: max(8, len(rows[i]["input_ids"]) // 4)]
        prompt = tokenizer.decode_to_piece(ids)
        composer = tokenizer.layout.composer_of(ids[:2])  # a window opening a piece: <start> <composer:..>
        (result,) = continue_piece(
            model, tokenizer, prompt, composer=composer, max_new_tokens=tokens, seed=seed + i, progress=False
        )
        paths.append(write_midi(result.piece, out_dir / f"step-{step:07d}-{i}.mid"))
    model.train()
    return paths
