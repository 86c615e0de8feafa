"""The negative log-likelihood: the one function that scores next-token predictions, for `maia evaluate` and training.

:func:`nll_sums` scores a batch and returns its sums (nats, tokens, notes), so that callers can add
batches, processes (``accelerator.reduce``) and chunks before dividing; :func:`likelihood_summary`
turns the sums into the figures reported everywhere (nats and bits per token, bits per note,
perplexity). :func:`validation_nll` scores a corpus split with each token counted once.

Example:

```python
>>> import torch
>>> from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaTokenizer
>>> from maia_hf.evaluation.likelihood import likelihood_summary, nll_sums
>>> tokenizer = MaiaTokenizer()
>>> _ = torch.manual_seed(0)
>>> model = MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), n_layer=1, n_head=2, n_embd=16, n_positions=32))
>>> ids = torch.tensor([tokenizer.encode_text("p60 wait12 endp60 p64 wait12 endp64", composer="bach")])
>>> nats, tokens, notes = nll_sums(model, ids, layout=tokenizer.layout).tolist()
>>> tokens, notes   # every token after <start> (<end> included); the note-ons p60 and p64
(8.0, 2.0)
>>> summary = likelihood_summary(nats, int(tokens), int(notes))
>>> sorted(summary)
['bits_per_note', 'bits_per_token', 'loss', 'notes', 'perplexity', 'tokens']

```
"""

from __future__ import annotations

import math

import numpy as np

from .corpus import window_table

__all__ = ["likelihood_summary", "nll_sums", "validation_nll"]

LN2 = math.log(2)


def nll_sums(model, input_ids, attention_mask=None, layout=None, first_scored=None):
    """Summed negative log-likelihood of next-token predictions: a float64 tensor ``[nats, tokens, notes]``.

    Target ``t`` (the token at position ``t``, predicted from positions ``< t``) is scored when
    ``t >= first_scored`` and both it and the token before it are real (not padding). Runs under
    ``torch.no_grad`` (callers may wrap it in ``accelerator.autocast()``); the logits are cast to float32
    before the softmax and the sums are float64.

    Args:
        model: a causal language model returning ``.logits`` of shape `(B, T, V)`.
        input_ids (`torch.LongTensor` of shape `(B, T)`): on the model's device.
        attention_mask (`torch.Tensor` of shape `(B, T)`, *optional*): 1 for real tokens, 0 for padding;
            padding is neither scored nor counted. Passed to the model when given.
        layout (`VocabularyLayout`, *optional*): ``tokenizer.layout``, to count the scored note-on
            targets; without it ``notes`` is 0.
        first_scored (`torch.LongTensor` of shape `(B,)`, *optional*): each row's first scored target
            position (default 1: every token after the first).

    Returns:
        `torch.Tensor` of shape `(3,)`, float64, on the device of ``input_ids``: nats, tokens, notes.
    """
    import torch

    with torch.no_grad():
        masked = {} if attention_mask is None else {"attention_mask": attention_mask}
        logits = (
            model(input_ids=input_ids, **masked).logits[:, :-1].float()
        )  # (B, T-1, V): predictions of targets 1..T-1
        targets = input_ids[:, 1:]  # (B, T-1)
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]  # (B, T-1)
        scored = _scored_targets(input_ids, attention_mask, first_scored)  # (B, T-1)
        nats = -logp.double().masked_fill(~scored, 0).sum()
        tokens = scored.sum().double()
        notes = torch.zeros_like(nats) if layout is None else (layout.is_note_on(targets) & scored).sum().double()
        return torch.stack([nats, tokens, notes])


def _scored_targets(input_ids, attention_mask, first_scored):
    """(B, T-1) booleans: which targets 1..T-1 count."""
    import torch

    batch, length = input_ids.shape
    positions = torch.arange(1, length, device=input_ids.device)[None, :]  # (1, T-1)
    first = torch.ones(batch, dtype=torch.long, device=input_ids.device) if first_scored is None else first_scored
    scored = positions >= first.to(input_ids.device)[:, None]
    if attention_mask is not None:
        real = attention_mask.to(input_ids.device).bool()
        scored &= real[:, 1:] & real[:, :-1]  # a real target after a real token
    return scored


def likelihood_summary(nats: float, tokens: int, notes: int) -> dict:
    """The reported figures from the sums of :func:`nll_sums` (NaN where nothing was counted).

    Returns:
        `dict`: ``loss`` (nats per token), ``perplexity`` (e^loss), ``bits_per_token``, ``bits_per_note``
        (all the bits over the note-on targets: what a note costs, its waits and note-off included),
        ``tokens`` and ``notes``.

    >>> summary = likelihood_summary(2 * 100 * math.log(2), 100, 25)
    >>> summary["bits_per_token"], summary["bits_per_note"], summary["perplexity"]
    (2.0, 8.0, 4.0)
    >>> math.isnan(likelihood_summary(0.0, 0, 0)["loss"])
    True
    """
    tokens, notes = int(tokens), int(notes)
    loss = nats / tokens if tokens else math.nan
    return {
        "loss": loss,
        "perplexity": _exp(loss),
        "bits_per_token": loss / LN2,
        "bits_per_note": nats / LN2 / notes if notes else math.nan,
        "tokens": tokens,
        "notes": notes,
    }


def _exp(x: float) -> float:
    """e^x, infinite past float range (a diverged model), NaN for NaN."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


# --------------------------------------------------------------------------------------------
# A corpus split, each token scored once
# --------------------------------------------------------------------------------------------


def _scoring_plan(split, max_windows: int) -> list[tuple[int, int]]:
    """(row, first new position) of the windows to score: each token is scored in the window where it is new."""
    _, frame = window_table(split)
    frame = frame.sort_values(["piece_id", "transpose", "window_start"], kind="stable")
    plan, previous_end, previous_key = [], 0, None
    columns = (frame.index, frame["piece_id"], frame["transpose"], frame["window_start"], frame["length"])
    for row, piece, key, start, length in zip(*columns, strict=True):
        if (piece, key) != previous_key:
            previous_end, previous_key = 0, (piece, key)
        plan.append((int(row), max(1, previous_end - int(start))))
        previous_end = int(start) + int(length)
    if max_windows and len(plan) > max_windows:
        plan = [plan[i] for i in np.linspace(0, len(plan) - 1, max_windows).round().astype(int)]
    return plan


def _chunks(ids: list[int], first: int, limit: int) -> list[tuple[list[int], int]]:
    """A window cut to the model's positions: (chunk, first scored position), chunks overlapping by half.

    >>> _chunks(list(range(10)), 1, 4)
    [([0, 1, 2, 3], 1), ([2, 3, 4, 5], 2), ([4, 5, 6, 7], 2), ([6, 7, 8, 9], 2)]
    """
    if len(ids) <= limit:
        return [(ids, first)] if first < len(ids) else []
    out, step = [], max(1, limit // 2)
    for begin in range(0, len(ids) - limit + step, step):
        begin = min(begin, len(ids) - limit)
        scored_from = max(first - begin, 1, (out[-1][2] if out else 0) - begin)
        if scored_from < limit:
            out.append((ids[begin : begin + limit], scored_from, begin + limit))
    return [(chunk, scored_from) for chunk, scored_from, _ in out]


def validation_nll(model, tokenizer, split, max_windows: int = 256, batch_size: int = 8) -> dict:
    """Negative log-likelihood of a split's windows: nats and bits per token, bits per note.

    Every token after a sequence's first is scored once, in the window where it is new (so it has the
    overlap of the windows as context); ``max_windows`` evenly spaced windows are scored (0: all).
    Windows longer than the model's positions are scored in chunks that overlap by half.

    Returns:
        `dict`: ``windows``, ``tokens``, ``notes`` (note-on tokens scored), ``nats_per_token``,
        ``bits_per_token``, ``bits_per_note``, ``perplexity``.
    """
    import torch

    plan = _scoring_plan(split, max_windows)
    limit = getattr(model.config, "n_positions", None) or 10**9
    rows = split.select([row for row, _ in plan])["input_ids"]
    by_length: dict[int, list[tuple[list[int], int]]] = {}  # equal lengths batch without padding
    for ids, (_, first) in zip(rows, plan, strict=True):
        for chunk, scored_from in _chunks(list(ids), first, limit):
            by_length.setdefault(len(chunk), []).append((chunk, scored_from))
    sums = torch.zeros(3, dtype=torch.float64, device=model.device)
    for chunks in by_length.values():
        for i in range(0, len(chunks), batch_size):
            batch = chunks[i : i + batch_size]
            ids = torch.tensor([c for c, _ in batch], dtype=torch.long, device=model.device)  # (B, T)
            first = torch.tensor([s for _, s in batch], dtype=torch.long, device=model.device)  # (B,)
            sums += nll_sums(model, ids, layout=tokenizer.layout, first_scored=first)
    nats, tokens, notes = sums.tolist()
    summary = likelihood_summary(nats, int(tokens), int(notes))
    return {
        "windows": len(plan),
        "tokens": summary["tokens"],
        "notes": summary["notes"],
        "nats_per_token": summary["loss"],
        "bits_per_token": summary["bits_per_token"],
        "bits_per_note": summary["bits_per_note"],
        "perplexity": summary["perplexity"],
    }
