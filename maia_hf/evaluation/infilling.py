"""Does the model use what comes after the gap? Bits per middle token given prefix and suffix, and given the prefix.

:func:`infilling_nll` cuts held-out windows at gaps drawn as in training (:class:`~maia_hf.data.FimTransform`,
from a fixed seed) and scores the same middle words two ways: in fill-in-the-middle order (``psm`` or
``spm``, the one the model was trained in), where the model sees the suffix, and left to right after the
same prefix, where it does not. A model that has learned to infill gives the middle fewer bits when it sees
the suffix. The middle's closing ``<end>`` is not scored (left to right has no such token), so both figures
count exactly the same targets. A third figure is the control: the same middle after another gap's suffix
(moved to the same gap length), so the format is the same and only the suffix's music is wrong; a model
that reads the suffix gives the true one fewer bits.
"""

from __future__ import annotations

import numpy as np

from ..data.fim import FimTransform, fim_context, fim_order_of, fim_passages
from ..notes import NoteArray
from .likelihood import LN2, nll_sums

__all__ = ["infilling_nll"]


def _rows(tokenizer, parts, composer: str | None, seq_len: int,
          order: str = "psm") -> tuple[list[int], int, list[int], int] | None:  # fmt: skip
    """(fill-in-the-middle ids, first middle position, left-to-right ids, first middle position)."""
    layout = tokenizer.layout
    prefix, suffix, middle = fim_passages(tokenizer, parts)
    head = [tokenizer.bos_token_id, tokenizer.composer_token_id(composer)]
    over = len(head) + 3 + len(prefix) + len(suffix) + len(middle) - seq_len
    if over > 0:  # as in training: the prefix's start goes first, then the suffix's end
        cut = min(over, len(prefix))
        prefix, over = prefix[cut:], over - cut
        suffix = suffix[: len(suffix) - over] if over > 0 else suffix
    if not middle or len(head) + 3 + len(prefix) + len(suffix) + len(middle) > seq_len:
        return None
    fim = [*fim_context(layout, head, prefix, suffix, order), *middle]
    l2r = [*head, *prefix, *middle]
    return fim, len(fim) - len(middle), l2r, len(l2r) - len(middle)


def _score(model, rows: list[tuple[list[int], int]], pad: int, batch_size: int) -> tuple[float, int]:
    import torch

    nats, tokens = 0.0, 0
    for i in range(0, len(rows), batch_size):
        batch = rows[i : i + batch_size]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long, device=model.device)
        mask = torch.zeros_like(ids)
        for j, (row, _) in enumerate(batch):
            ids[j, : len(row)], mask[j, : len(row)] = torch.tensor(row), 1
        first = torch.tensor([f for _, f in batch], dtype=torch.long, device=model.device)
        sums = nll_sums(model, ids, attention_mask=mask, first_scored=first).tolist()
        nats, tokens = nats + sums[0], tokens + int(sums[1])
    return nats, tokens


def infilling_nll(model, tokenizer, split, *, max_windows: int = 128, max_bars: int = 4, seed: int = 0,
                  batch_size: int = 8, order: str | None = None) -> dict:  # fmt: skip
    """Bits per middle token of held-out gaps, with and without the suffix in view.

    Args:
        model: a causal LM over ``tokenizer``'s vocabulary (with the fill-in-the-middle tokens).
        tokenizer (`MaiaTokenizer`): with :attr:`~maia_hf.tokenization_maia.VocabularyLayout.has_fim`.
        split (`datasets.Dataset`): windows of held-out pieces (a corpus's ``validation`` split).
        max_windows (`int`, *optional*, defaults to 128): evenly spaced windows used (0: all).
        max_bars (`int`, *optional*, defaults to 4), seed (`int`, *optional*, defaults to 0): the gaps, drawn
            as :class:`~maia_hf.data.FimTransform` draws them.
        order (`str`, *optional*): ``"psm"`` or ``"spm"`` (default: the order the model records,
            :func:`~maia_hf.data.fim.fim_order_of`).

    Returns:
        `dict`: ``order``, ``gaps``, ``tokens`` (middle tokens scored, each way), ``bits_per_token_with_suffix``,
        ``bits_per_token_prefix_only``, ``bits_per_token_other_suffix`` (the control), ``saving`` (the share
        of bits the suffix saves against the prefix alone) and ``saving_over_other_suffix``.
    """
    seq_len = getattr(model.config, "n_positions", None) or 512
    order = order or fim_order_of(model)
    fim = FimTransform(tokenizer, rate=1.0, max_bars=max_bars, seq_len=seq_len, seed=seed)
    n = len(split)
    picks = range(n) if not max_windows or max_windows >= n else np.linspace(0, n - 1, max_windows).round().astype(int)
    columns = split.select([int(i) for i in picks])
    gaps = []
    for index, (ids, composer) in enumerate(zip(columns["input_ids"], columns["composer"], strict=True)):
        parts = fim.draw_gap(list(ids), np.random.default_rng([seed, index, 0x46494D]))
        if parts is not None:
            gaps.append((parts, composer))
    fim_rows, l2r_rows, other_rows = [], [], []
    for k, (parts, composer) in enumerate(gaps):
        rows = _rows(tokenizer, parts, composer, seq_len, order)
        other = _rows(tokenizer, _with_suffix_of(parts, gaps[(k + 7) % len(gaps)][0]), composer, seq_len, order)
        if rows is not None and other is not None and other[0][other[1] :] == rows[0][rows[1] :]:
            fim_rows.append(rows[:2])
            l2r_rows.append(rows[2:])
            other_rows.append(other[:2])
    with_suffix, tokens = _score(model, fim_rows, tokenizer.pad_token_id, batch_size)
    prefix_only, _ = _score(model, l2r_rows, tokenizer.pad_token_id, batch_size)
    wrong_suffix, _ = _score(model, other_rows, tokenizer.pad_token_id, batch_size)
    bits = [nats / LN2 / max(tokens, 1) for nats in (with_suffix, prefix_only, wrong_suffix)]
    return {
        "order": order,
        "gaps": len(fim_rows),
        "tokens": tokens,
        "bits_per_token_with_suffix": bits[0],
        "bits_per_token_prefix_only": bits[1],
        "bits_per_token_other_suffix": bits[2],
        "saving": 1 - bits[0] / bits[1] if bits[1] else 0.0,
        "saving_over_other_suffix": 1 - bits[0] / bits[2] if bits[2] else 0.0,
    }


def _with_suffix_of(parts, other):
    """``parts`` with ``other``'s suffix, moved so that it starts as far after this gap as after its own."""
    shift = (parts.gap_end - parts.gap_start) - (other.gap_end - other.gap_start)
    s = other.suffix
    return parts._replace(suffix=NoteArray(s.pitch, s.start + shift, s.end + shift, s.velocity))
