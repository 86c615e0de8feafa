"""BLEU over notewise n-grams, as pure numpy: the math behind the ``maia_bleu`` metric.

This file is self-contained (numpy only, no maia, no evaluate) because ``evaluate.load`` copies a
metric script and the modules it imports relatively into its own cache: ``maia_bleu.py`` imports
it as ``from .notewise_bleu import ...``, and ``maia_hf.metrics`` re-exports it for use without
``evaluate``.

**The score.** For each order n, the modified n-gram precision of Papineni et al. (2002): every
n-gram of a prediction counts as a match at most as often as it occurs in any *one* reference
(clipping), summed over all predictions and divided by the number of n-grams of the predictions.
The score is the weighted geometric mean of the precisions of orders 1..5 with maia's fixed weights
:data:`MAIA_BLEU_WEIGHTS`, times the brevity penalty when it is asked for (off by default).

Why these weights (little on 1- to 3-grams, most on 4- and 5-grams, none on longer) and why no
brevity penalty by default: the metric's card, ``README.md`` beside this file.

Example:

```python
>>> from maia_hf.metrics import notewise_bleu
>>> result = notewise_bleu(["p60 wait6 endp60 p62 wait6 endp62"], ["p60 wait6 endp60 p62 wait6 endp62 p64"])
>>> result["bleu"], result["precision_5"]
(1.0, 1.0)

```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MAIA_BLEU_WEIGHTS",
    "MAX_ORDER",
    "NgramMatches",
    "bleu_from_matches",
    "count_matches",
    "count_matches_per_prediction",
    "cumulative_bleu",
    "notewise_bleu",
    "pool_of",
    "to_words",
]

MAX_ORDER = 5
# Weights of the 1- to 5-gram precisions; 6-grams and longer get none (see the module docstring).
MAIA_BLEU_WEIGHTS = (0.05, 0.05, 0.1, 0.4, 0.4)


def to_words(sequence) -> list:
    """A sequence's words: a string is split on whitespace and its special tokens (``<start>``,
    ``<composer:mozart>``, ``<end>``...) dropped; a list or array of words or token ids is kept as it is.

    >>> to_words("<start> <composer:bach> p60 wait12 endp60 <end>")
    ['p60', 'wait12', 'endp60']
    """
    if isinstance(sequence, str):
        return [w for w in sequence.split() if not (w.startswith("<") and w.endswith(">"))]
    return list(sequence.tolist() if hasattr(sequence, "tolist") else sequence)


@dataclass
class NgramMatches:
    """Clipped n-gram matches of each prediction against its references.

    Attributes:
        matches (`np.ndarray` of shape `(predictions, max_order)`): clipped matches of order n in column n-1.
        totals (`np.ndarray` of shape `(predictions, max_order)`): n-grams of order n in each prediction.
        prediction_lengths (`np.ndarray` of shape `(predictions,)`): words of each prediction.
        reference_lengths (`np.ndarray` of shape `(predictions,)`): words of the reference whose length
            is closest to the prediction's (the shorter one on a tie).
    """

    matches: np.ndarray
    totals: np.ndarray
    prediction_lengths: np.ndarray
    reference_lengths: np.ndarray

    @classmethod
    def concatenate(cls, parts: list[NgramMatches]) -> NgramMatches:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))

    def __len__(self) -> int:
        return len(self.prediction_lengths)


def _as_token_arrays(sequences: list) -> list[np.ndarray]:
    """Every sequence as int64 ids: words are numbered in order of first appearance, ids kept."""
    words = [to_words(s) for s in sequences]
    kinds = {isinstance(w, str) for seq in words for w in seq}
    if kinds == {True, False}:
        raise ValueError("sequences mix words and integer ids; pass notewise text or token ids, not both")
    if kinds == {True}:
        index: dict[str, int] = {}
        return [np.array([index.setdefault(w, len(index)) for w in seq], dtype=np.int64) for seq in words]
    return [np.asarray(seq, dtype=np.int64).reshape(-1) for seq in words]


def _ngram_codes(tokens: np.ndarray, owner: np.ndarray, max_order: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each order n, a dense code of the n-gram starting at every position, and whether it exists.

    Codes are exact (no hashing): the code of an n-gram is the dense rank of (code of its first n-1
    words, its last word), so codes stay below the number of positions whatever the vocabulary.
    """
    size = len(tokens)
    _, word = np.unique(tokens, return_inverse=True)
    word = word.astype(np.int64).reshape(-1)
    base = int(word.max()) + 1 if size else 1
    codes, valid = word, np.ones(size, dtype=bool)
    out = [(codes, valid)]
    for n in range(2, max_order + 1):
        last = np.full(size, -1, dtype=np.int64)
        same = np.zeros(size, dtype=bool)
        if size >= n:
            last[: size - n + 1] = word[n - 1 :]
            same[: size - n + 1] = owner[n - 1 :] == owner[: size - n + 1]  # sequences are contiguous
        valid = valid & same
        _, codes = np.unique(np.where(valid, codes * base + last, -1), return_inverse=True)
        codes = codes.astype(np.int64).reshape(-1)
        out.append((codes, valid))
    return out


def count_matches(predictions: Sequence, references: Sequence, max_order: int = MAX_ORDER) -> NgramMatches:
    """Clipped n-gram matches of every prediction against one shared pool of references.

    Args:
        predictions: notewise texts, lists of words, or arrays of token ids.
        references: the pool, in the same form; each n-gram of a prediction matches at most as often
            as it occurs in the one reference where it occurs most.

    Returns:
        `NgramMatches`, one row per prediction.

    >>> m = count_matches(["a b a b"], ["a b c", "b a b a b"], max_order=2)
    >>> m.matches.tolist(), m.totals.tolist(), m.reference_lengths.tolist()
    ([[4, 3]], [[4, 3]], [3])
    """
    if not len(references):
        raise ValueError("BLEU needs at least one reference")
    arrays = _as_token_arrays(list(predictions) + list(references))
    n_pred = len(predictions)
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    owner = np.repeat(np.arange(len(arrays)), lengths)
    tokens = np.concatenate(arrays) if len(arrays) else np.zeros(0, dtype=np.int64)
    is_reference = owner >= n_pred
    matches = np.zeros((n_pred, max_order), dtype=np.int64)
    totals = np.zeros((n_pred, max_order), dtype=np.int64)
    for n, (codes, valid) in enumerate(_ngram_codes(tokens, owner, max_order), start=1):
        n_codes = int(codes.max()) + 1 if len(codes) else 1
        # The most times each n-gram occurs in one reference.
        ref = valid & is_reference
        keys, counts = np.unique(owner[ref] * n_codes + codes[ref], return_counts=True)
        most = np.zeros(n_codes, dtype=np.int64)
        np.maximum.at(most, keys % n_codes, counts)
        # Each prediction's n-gram counts, clipped by it.
        hyp = valid & ~is_reference
        keys, counts = np.unique(owner[hyp] * n_codes + codes[hyp], return_counts=True)
        clipped = np.minimum(counts, most[keys % n_codes])
        matches[:, n - 1] = np.bincount(keys // n_codes, weights=clipped, minlength=n_pred)[:n_pred]
        totals[:, n - 1] = np.bincount(keys // n_codes, weights=counts, minlength=n_pred)[:n_pred]
    return NgramMatches(matches, totals, lengths[:n_pred], _closest(lengths[:n_pred], lengths[n_pred:]))


def _closest(lengths: np.ndarray, reference_lengths: np.ndarray) -> np.ndarray:
    """The reference length closest to each length; the shorter on a tie."""
    pool = np.unique(reference_lengths)
    right = np.clip(np.searchsorted(pool, lengths), 0, len(pool) - 1)
    left = np.clip(right - 1, 0, len(pool) - 1)
    take_left = np.abs(lengths - pool[left]) <= np.abs(pool[right] - lengths)
    return np.where(take_left, pool[left], pool[right])


def count_matches_per_prediction(
    predictions: Sequence, references: Sequence, max_order: int = MAX_ORDER
) -> NgramMatches:
    """Like :func:`count_matches`, but each prediction has its own references (a list, or one string).

    Predictions that share the same references are counted together, so passing one large pool for
    every prediction costs one pass. Rows come back grouped by reference list, which corpus BLEU ignores.
    """
    if len(predictions) != len(references):
        raise ValueError(f"got {len(predictions)} predictions but {len(references)} reference lists")
    groups: dict[tuple, list[int]] = {}
    for i, refs in enumerate(references):
        key = (refs,) if isinstance(refs, str) else tuple(r if isinstance(r, str) else tuple(to_words(r)) for r in refs)
        groups.setdefault(key, []).append(i)
    parts = [count_matches([predictions[i] for i in rows], list(key), max_order) for key, rows in groups.items()]
    return NgramMatches.concatenate(parts)


def _log_mean(precisions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """exp(sum_n w_n log p_n) along the last axis; 0 where a precision with weight is 0."""
    used = weights > 0
    kept = precisions[..., used]
    logs = np.log(np.maximum(kept, np.finfo(np.float64).tiny))
    return np.where((kept <= 0).any(axis=-1), 0.0, np.exp((logs * weights[used]).sum(axis=-1)))


def _precisions(hits: np.ndarray, total: np.ndarray, smooth: bool) -> np.ndarray:
    """Matches over n-grams (0 where there is no n-gram); with ``smooth``, both plus one."""
    if smooth:
        return (hits + 1) / (total + 1)
    return np.divide(hits, total, out=np.zeros_like(hits), where=total > 0)


def bleu_from_matches(
    matches: NgramMatches, weights=MAIA_BLEU_WEIGHTS, smooth: bool = False, brevity_penalty: bool = False
) -> dict:
    """Corpus BLEU from counted matches.

    Args:
        matches (`NgramMatches`): from :func:`count_matches` (or several, concatenated).
        weights (`tuple[float]`, *optional*, defaults to `MAIA_BLEU_WEIGHTS`): weight of each order's
            precision (orders 1..len(weights)).
        smooth (`bool`, *optional*, defaults to `False`): add one to the matches and n-grams of every
            order (Lin and Och, 2004), so that one order without a match does not zero the score.
        brevity_penalty (`bool`, *optional*, defaults to `False`): multiply by the brevity penalty.

    Returns:
        `dict` with ``bleu``, ``precision_1`` .. ``precision_N``, ``brevity_penalty`` (the factor
        applied: 1.0 when off), ``length_ratio``, ``prediction_length`` and ``reference_length`` (words).
    """
    weights = np.asarray(weights, dtype=np.float64)
    order = len(weights)
    if order > matches.matches.shape[1]:
        raise ValueError(f"{order} weights but matches were counted up to order {matches.matches.shape[1]}")
    hits = matches.matches[:, :order].sum(axis=0).astype(np.float64)
    total = matches.totals[:, :order].sum(axis=0).astype(np.float64)
    precisions = _precisions(hits, total, smooth)
    prediction_length = int(matches.prediction_lengths.sum())
    reference_length = int(matches.reference_lengths.sum())
    ratio = prediction_length / reference_length if reference_length else 0.0
    penalty = 1.0 if ratio > 1 else (float(np.exp(1 - 1 / ratio)) if ratio > 0 else 0.0)
    applied = penalty if brevity_penalty else 1.0
    result = {"bleu": float(_log_mean(precisions, weights)) * applied}
    result.update({f"precision_{n}": float(p) for n, p in enumerate(precisions, start=1)})
    result.update(
        brevity_penalty=applied,
        length_ratio=ratio,
        prediction_length=prediction_length,
        reference_length=reference_length,
    )
    return result


def cumulative_bleu(matches: NgramMatches, order: int, smooth: bool = False) -> np.ndarray:
    """Each prediction's own cumulative BLEU-``order``: the geometric mean of its 1..order-gram
    precisions with equal weights (no brevity penalty). 0 for a prediction with no match of some order.

    >>> m = count_matches(["a b c d", "a b x y"], ["a b c d"], max_order=2)
    >>> cumulative_bleu(m, 2).round(4).tolist()  # precisions (1, 1) and (2/4, 1/3)
    [1.0, 0.4082]
    """
    hits = matches.matches[:, :order].astype(np.float64)
    total = matches.totals[:, :order].astype(np.float64)
    return _log_mean(_precisions(hits, total, smooth), np.full(order, 1.0 / order))


def notewise_bleu(
    predictions: Sequence,
    references: Sequence,
    weights=MAIA_BLEU_WEIGHTS,
    smooth: bool = False,
    brevity_penalty: bool = False,
) -> dict:
    """maia's BLEU of ``predictions`` against one pool of ``references`` (see the module docstring).

    Args:
        predictions: notewise texts (special tokens are dropped), lists of words, or arrays of token ids.
        references: the reference pool, in the same form (e.g. the training pieces).
        weights, smooth, brevity_penalty: see :func:`bleu_from_matches`.

    Returns:
        `dict`: ``bleu``, ``precision_1`` .. ``precision_5``, ``brevity_penalty``, ``length_ratio``,
        ``prediction_length``, ``reference_length``.

    >>> r = notewise_bleu(["p60 wait6 endp60 p64 wait6 endp64"], ["p60 wait6 endp60 p62 wait6 endp62"])
    >>> [round(r[f"precision_{n}"], 4) for n in range(1, 6)]  # 4/6, 2/5, 1/4, 0/3, 0/2
    [0.6667, 0.4, 0.25, 0.0, 0.0]
    >>> r["bleu"]  # no 4-gram matches: the geometric mean is 0
    0.0
    >>> smoothed = notewise_bleu(["p60 wait6 endp60 p64 wait6 endp64"], ["p60 wait6 endp60"], smooth=True)
    >>> round(smoothed["bleu"], 4)  # precisions (3+1)/(6+1), 3/6, 2/5, 1/4, 1/3
    0.3172

    References nested as ``evaluate``'s ``bleu`` takes them (one list of texts per prediction) are
    read as one pool, their union:

    >>> nested = notewise_bleu(["p60 wait6 endp60 p64 wait6 endp64"], [["p60 wait6 endp60 p62 wait6 endp62"]])
    >>> nested == r
    True
    """
    references = pool_of(references)
    return bleu_from_matches(count_matches(predictions, references, len(weights)), weights, smooth, brevity_penalty)


def pool_of(references: Sequence) -> list:
    """The reference pool: ``references`` itself, or the union of per-prediction lists of texts."""
    nested = len(references) > 0 and all(
        isinstance(r, (list, tuple)) and len(r) > 0 and all(isinstance(t, str) and " " in t.strip() for t in r)
        for r in references
    )
    return [text for group in references for text in group] if nested else list(references)
