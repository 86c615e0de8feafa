"""Sparse Transformer attention (Child et al., 2019), as attention functions registered into `transformers`.

Two causal factorized patterns, both exact (the "merged head" form: one head attends to the union of
the pattern's two sets):

- **fixed**, block length ``l`` and ``c`` summary positions: position ``i`` attends to ``j <= i`` when
  ``j`` is in ``i``'s block (``j // l == i // l``) or ``j`` is a summary position, one of the last ``c`` of
  its block (``j % l >= l - c``). With ``per_head_summary`` head ``h`` uses its own sub-block of ``c``
  positions, the ``(h mod l/c)``-th from the end of each block (the paper's recommendation).
- **strided**, stride ``l``: ``i`` attends to the previous ``l`` positions (``i - l < j <= i``) and to every
  position a multiple of ``l`` back (``(i - j) % l == 0``).

`fixed_pattern_mask` and `strided_pattern_mask` give the masks as ``[seq_len, seq_len]`` boolean tensors.
``maia_hf.registration`` registers ``maia_sparse_fixed`` and ``maia_sparse_strided`` in both
``AttentionInterface`` (`sparse_attention_forward`) and ``AttentionMaskInterface`` (`fixed_mask_interface`,
`strided_mask_interface`); ``MaiaConfig`` picks the pattern (``attn_implementation``), ``sparse_block``,
``sparse_summary``, ``sparse_per_head_summary`` and the backend ``sparse_backend``:

- ``"sdpa"``: `torch.nn.functional.scaled_dot_product_attention` with a boolean ``[batch, 1 or heads,
  query, key]`` mask. Exact everywhere, trains on CPU; costs what dense attention costs.
- ``"flex"``: FlexAttention with a `BlockMask` that skips every block the pattern masks. For *fixed*,
  the summary keys are gathered in front of the keys (``[summaries of every block; all keys]``), so that
  they fill whole 128-blocks; a query block then visits the summary blocks before its own block and its
  own block, O(n * (n c / l + l)) work instead of O(n^2). *Strided* keeps the natural layout (every key
  block holds one key per row at a multiple of ``l`` back, so it cannot skip blocks below the diagonal).
  FlexAttention has no CPU backward and no dropout in torch 2.13: then this step runs the ``"sdpa"``
  path instead, with a warning once (same result, dense cost).
- ``"split"``: the pattern cut into disjoint dense pieces (for *fixed*: each block causally, and each
  block against the summaries before it; for *strided*: each block causally, the rest of the previous
  block, and the positions equal modulo ``l``), each run by SDPA's fused CPU kernel, which returns its
  log-sum-exp, and merged exactly by it. Its backward pass hands every piece the merged output and
  log-sum-exp, so each piece's kernel backward is the exact gradient of its share: sparse cost for CPU
  training and inference alike. Padded batches, cached steps, dropout and other devices use the
  ``"sdpa"`` path.

Positions in the pattern are positions *within each sequence* (the 2D attention mask's running count),
so a left-padded row gives the same result as the same tokens unpadded. With a KV cache the queries
sit at their absolute positions, so incremental decoding equals recomputing the whole sequence.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .errors import MaiaInputError

__all__ = [
    "BACKENDS",
    "COMPILE_FLEX",
    "FLEX_MIN_QUERIES",
    "FlexSparseMask",
    "SparsePattern",
    "SplitSparseMask",
    "fixed_mask_interface",
    "fixed_pattern_mask",
    "sparse_attention_forward",
    "strided_mask_interface",
    "strided_pattern_mask",
]

BACKENDS = ("sdpa", "flex", "split")
# FlexAttention skips masked blocks only when compiled; uncompiled it is a dense reference (tests use it).
COMPILE_FLEX = True
_FLEX_BLOCK = 128  # FlexAttention's default block: queries and keys are visited 128 at a time
# Fewer queries than this (decoding steps, short prompts) form a single query block: FlexAttention would
# save nothing over SDPA's O(queries x keys) there, and each new shape costs a torch.compile specialisation
# (tens of seconds on CPU). Such calls use the "sdpa" path.
FLEX_MIN_QUERIES = _FLEX_BLOCK


# --------------------------------------------------------------------------------------------
# The patterns, as pure index predicates (broadcasting tensors in, boolean tensor out)
# --------------------------------------------------------------------------------------------


def _summary_start(block: int, summary: int, head) -> int | torch.Tensor:
    """First position, within a block, of the summary sub-block used by ``head`` (None: the last ``c``)."""
    if head is None:
        return block - summary
    return block - summary * (head % (block // summary) + 1)


def fixed_allows(q_pos, kv_pos, block: int, summary: int, head=None) -> torch.Tensor:
    """Fixed pattern: ``kv_pos <= q_pos`` and (same block, or ``kv_pos`` a summary position of its block)."""
    start = _summary_start(block, summary, head)
    in_summary = (kv_pos % block >= start) & (kv_pos % block < start + summary)
    return (kv_pos <= q_pos) & ((q_pos // block == kv_pos // block) | in_summary)


def strided_allows(q_pos, kv_pos, stride: int) -> torch.Tensor:
    """Strided pattern: ``kv_pos <= q_pos`` and (one of the previous ``stride``, or a multiple of it back)."""
    # Written without q_pos - kv_pos: on [n, n] grids that would be an int64 tensor 8x the boolean mask.
    near = kv_pos > q_pos - stride
    same_phase = q_pos % stride == kv_pos % stride
    return (kv_pos <= q_pos) & (near | same_phase)


def fixed_pattern_mask(seq_len: int, block: int, summary: int, head: int | None = None) -> torch.Tensor:
    """The causal *fixed* pattern as a ``[seq_len, seq_len]`` boolean tensor (True = may attend).

    Args:
        seq_len (`int`): sequence length.
        block (`int`): block length ``l``.
        summary (`int`): summary positions ``c`` at the end of each block (``1 <= c <= l``).
        head (`int`, *optional*): with a per-head summary, the head whose sub-block to use; ``None`` (or 0)
            is the last ``c`` positions of each block.

    Example:

    ```python
    >>> from maia_hf.sparse_attention import fixed_pattern_mask
    >>> fixed_pattern_mask(6, block=3, summary=1).int()
    tensor([[1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 1]], dtype=torch.int32)

    ```
    """
    SparsePattern("fixed", block, summary)  # validates
    pos = torch.arange(seq_len)
    return fixed_allows(pos[:, None], pos[None, :], block, summary, head)


def strided_pattern_mask(seq_len: int, stride: int) -> torch.Tensor:
    """The causal *strided* pattern as a ``[seq_len, seq_len]`` boolean tensor (True = may attend).

    Example:

    ```python
    >>> from maia_hf.sparse_attention import strided_pattern_mask
    >>> strided_pattern_mask(6, stride=2).int()
    tensor([[1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [0, 1, 1, 1, 0, 0],
            [1, 0, 1, 1, 1, 0],
            [0, 1, 0, 1, 1, 1]], dtype=torch.int32)

    ```
    """
    SparsePattern("strided", stride)
    pos = torch.arange(seq_len)
    return strided_allows(pos[:, None], pos[None, :], stride)


@dataclass(frozen=True)
class SparsePattern:
    """One sparse pattern with its sizes, as read from a configuration.

    Args:
        kind (`str`): ``"fixed"`` or ``"strided"``.
        block (`int`): block length (fixed) or stride (strided), ``l``.
        summary (`int`, *optional*, defaults to 1): summary positions per block ``c`` (fixed only).
        per_head_summary (`bool`, *optional*, defaults to `False`): a distinct summary sub-block per head.
        backend (`str`, *optional*, defaults to ``"sdpa"``): ``"sdpa"`` or ``"flex"``.
    """

    kind: str
    block: int
    summary: int = 1
    per_head_summary: bool = False
    backend: str = "sdpa"

    def __post_init__(self):
        if self.kind not in ("fixed", "strided"):
            raise MaiaInputError(f"unknown sparse pattern {self.kind!r}; choose 'fixed' or 'strided'")
        if int(self.block) < 1:
            raise MaiaInputError(f"sparse_block must be a positive block length, got {self.block}")
        if self.kind == "fixed" and not 1 <= int(self.summary) <= int(self.block):
            raise MaiaInputError(
                f"sparse_summary must be between 1 and sparse_block ({self.block}), got {self.summary}"
            )
        if self.backend not in BACKENDS:
            raise MaiaInputError(f"unknown sparse_backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")

    @classmethod
    def from_config(cls, config, kind: str) -> SparsePattern:
        """The pattern a (Maia) configuration asks for; plain GPT-2 configs get the defaults."""
        return cls(
            kind,
            block=getattr(config, "sparse_block", 128),
            summary=getattr(config, "sparse_summary", 16),
            per_head_summary=bool(getattr(config, "sparse_per_head_summary", False)),
            backend=getattr(config, "sparse_backend", "sdpa"),
        )

    @property
    def varies_by_head(self) -> bool:
        return self.kind == "fixed" and self.per_head_summary and self.block // self.summary > 1

    def allows(self, head, q_pos, kv_pos) -> torch.Tensor:
        """Whether ``q_pos`` may attend to ``kv_pos`` (sequence positions; broadcasting tensors)."""
        if self.kind == "strided":
            return strided_allows(q_pos, kv_pos, self.block)
        return fixed_allows(q_pos, kv_pos, self.block, self.summary, head if self.varies_by_head else None)


# --------------------------------------------------------------------------------------------
# Dense boolean masks (the "sdpa" backend, and the reference every other path must equal)
# --------------------------------------------------------------------------------------------


@dataclass
class _MaskRequest:
    """What ``create_causal_mask`` hands an ``AttentionMaskInterface`` function, with sequence positions."""

    batch_size: int
    n_head: int
    q_index: torch.Tensor  # (Q,) absolute query indices
    kv_index: torch.Tensor  # (K,) absolute key indices
    mask_function: Callable
    padding: torch.Tensor | None  # (B, >= kv_offset + K) bool, True = a real token
    positions: torch.Tensor  # (B or 1, kv_offset + K) position of each index within its sequence

    @classmethod
    def build(cls, batch_size, q_length, kv_length, q_offset, kv_offset, mask_function, attention_mask, config, device):
        from transformers.masking_utils import prepare_padding_mask

        padding = prepare_padding_mask(attention_mask, kv_length, kv_offset)
        if padding is not None and bool(padding.all()):
            padding = None
        total = kv_offset + kv_length
        if padding is None:
            positions = torch.arange(total, device=device)[None, :]
        else:
            padding = padding[:, :total].to(device=device, dtype=torch.bool)
            positions = padding.long().cumsum(-1) - 1  # pads repeat their predecessor's position; masked anyway
        return cls(
            batch_size=batch_size,
            n_head=getattr(config, "num_attention_heads", getattr(config, "n_head", 1)),
            q_index=torch.arange(q_length, device=device) + q_offset,
            kv_index=torch.arange(kv_length, device=device) + kv_offset,
            mask_function=mask_function,
            padding=padding,
            positions=positions,
        )

    @property
    def is_plain_prefill(self) -> bool:
        """No padding, queries and keys both 0..n-1, and only the causal rule from transformers."""
        from transformers.masking_utils import causal_mask_function

        return (
            self.padding is None
            and self.mask_function is causal_mask_function
            and len(self.q_index) == len(self.kv_index)
            and int(self.q_index[0]) == 0
            and int(self.kv_index[0]) == 0
        )

    def base(self, batch, head, q_index, kv_index) -> torch.Tensor | bool:
        """transformers' own rule (causal, packing...) and the padding mask, at absolute indices."""
        from transformers.masking_utils import causal_mask_function

        if self.padding is None and self.mask_function is causal_mask_function:
            return True  # positions are the indices, and both patterns are causal already
        allowed = self.mask_function(batch, head, q_index, kv_index)
        if self.padding is not None:
            allowed = allowed & self.padding[batch, kv_index]
        return allowed

    def dense(self, pattern: SparsePattern) -> torch.Tensor:
        """The boolean mask ``(B, H or 1, Q, K)``: the pattern at sequence positions, and transformers' rule."""
        batch = torch.arange(self.batch_size, device=self.q_index.device)[:, None, None, None]
        heads = torch.arange(self.n_head if pattern.varies_by_head else 1, device=self.q_index.device)
        heads = heads[None, :, None, None]
        q_index, kv_index = self.q_index[None, None, :, None], self.kv_index[None, None, None, :]
        positions = self.positions[:, None, :, None]
        q_pos = positions[:, :, self.q_index]  # (B or 1, 1, Q, 1)
        kv_pos = positions[:, :, self.kv_index].transpose(-1, -2)  # (B or 1, 1, 1, K)
        allowed = pattern.allows(heads, q_pos, kv_pos) & self.base(batch, heads, q_index, kv_index)
        return allowed.expand(self.batch_size, -1, -1, -1)


def _mask_interface_for(kind: str):
    def mask_interface(
        batch_size: int,
        q_length: int,
        kv_length: int,
        q_offset: int = 0,
        kv_offset: int = 0,
        mask_function: Callable | None = None,
        attention_mask: torch.Tensor | None = None,
        config=None,
        device: torch.device | str = "cpu",
        **kwargs,
    ):
        from transformers.masking_utils import causal_mask_function

        pattern = SparsePattern.from_config(config, kind)
        request = _MaskRequest.build(
            batch_size,
            q_length,
            kv_length,
            q_offset,
            kv_offset,
            mask_function or causal_mask_function,
            attention_mask,
            config,
            device,
        )
        if pattern.backend == "flex" and q_length >= FLEX_MIN_QUERIES:
            return FlexSparseMask.build(pattern, request)
        if pattern.backend == "split" and request.is_plain_prefill:
            if request.q_index.device.type == "cpu":
                return SplitSparseMask(pattern, q_length, lambda: request.dense(pattern))
            _warn_once(
                "split-device",
                f"maia sparse attention: sparse_backend='split' runs on CPU only; on {request.q_index.device} the "
                "'sdpa' path computes it (same result, dense cost). Use sparse_backend='flex' on a GPU.",
            )
        return request.dense(pattern)

    mask_interface.__name__ = mask_interface.__qualname__ = f"{kind}_mask_interface"
    mask_interface.__doc__ = (
        f"``AttentionMaskInterface`` function of ``maia_sparse_{kind}``: a boolean ``(B, H or 1, Q, K)`` mask "
        "(``sparse_backend='sdpa'``) or a `FlexSparseMask` (``'flex'``)."
    )
    return mask_interface


fixed_mask_interface = _mask_interface_for("fixed")
strided_mask_interface = _mask_interface_for("strided")


# --------------------------------------------------------------------------------------------
# FlexAttention block masks
# --------------------------------------------------------------------------------------------


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _ordered(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Block matrix ``(..., q_blocks, kv_blocks)`` -> (blocks per row, their column indices first)."""
    blocks = blocks.to(torch.int32)
    return blocks.sum(-1).to(torch.int32), torch.argsort(blocks, dim=-1, descending=True, stable=True).to(torch.int32)


def _block_mask(partial: torch.Tensor, full: torch.Tensor, size: int, mask_mod, seq_lengths):
    """A `BlockMask` from boolean block matrices ``(B, H, q_blocks, kv_blocks)``: visit ``partial`` with
    ``mask_mod``, ``full`` without it, skip the rest."""
    from torch.nn.attention.flex_attention import BlockMask

    kv_num, kv_indices = _ordered(partial & ~full)
    full_num, full_indices = _ordered(full)
    return BlockMask.from_kv_blocks(
        kv_num, kv_indices, full_num, full_indices, BLOCK_SIZE=(size, size), mask_mod=mask_mod, seq_lengths=seq_lengths
    )


def _block_mask_from_dense(dense: torch.Tensor, size: int):
    """A `BlockMask` from a boolean element mask ``(B, H, Q, KV)`` (any shape; padded to whole blocks)."""
    b, h, q, kv = dense.shape
    padded = F.pad(dense, (0, _round_up(kv, size) - kv, 0, _round_up(q, size) - q))
    tiles = padded.view(b, h, padded.shape[2] // size, size, padded.shape[3] // size, size)
    partial, full = tiles.any(-1).any(-2), tiles.all(-1).all(-2)
    heads_vary = h > 1

    def mask_mod(batch, head, q_idx, kv_idx):
        return padded[batch, head if heads_vary else 0, q_idx, kv_idx]

    return _block_mask(partial, full, size, mask_mod, (q, kv))


def _summary_slots(pattern: SparsePattern, n_blocks: int, n_head: int, device) -> tuple[int, torch.Tensor]:
    """Summary slots for blocks ``0..n_blocks-2`` (the last block's summary is never needed as a summary).

    Returns the slot count ``S`` and the sequence position of each slot, ``(H or 1, S)``.
    """
    l, c = pattern.block, pattern.summary
    slots = max(n_blocks - 1, 0) * c
    s = torch.arange(slots, device=device)[None, :]
    heads = torch.arange(n_head if pattern.varies_by_head else 1, device=device)[:, None]
    start = _summary_start(l, c, heads if pattern.varies_by_head else None)
    return slots, ((s // c) * l + start + s % c).expand(heads.shape[0], -1)


class _DenseFallback:
    """The ``"sdpa"`` backend's boolean mask of a fast-path mask, made once, on demand (fallbacks)."""

    dense: Callable[[], torch.Tensor]
    _dense: torch.Tensor | None

    def dense_mask(self) -> torch.Tensor:
        if self._dense is None:
            self._dense = self.dense()
        return self._dense


@dataclass
class FlexSparseMask(_DenseFallback):
    """What the ``"flex"`` backend hands each attention layer (built once per forward).

    Args:
        block_mask (`BlockMask`): over ``(queries, [summary slots; keys])`` for *fixed*, ``(queries, keys)``
            for *strided*.
        summary_index (`torch.Tensor`, *optional*): ``(B or 1, H or 1, S_pad)`` key indices gathered in front
            of the keys (*fixed* only).
        dense (`Callable`): the ``"sdpa"`` backend's boolean mask, made on demand for the CPU-backward or
            dropout fallback.
    """

    block_mask: object
    summary_index: torch.Tensor | None
    dense: Callable[[], torch.Tensor]
    _dense: torch.Tensor | None = field(default=None, repr=False)

    @classmethod
    def build(cls, pattern: SparsePattern, request: _MaskRequest) -> FlexSparseMask:
        dense = lambda: request.dense(pattern)  # noqa: E731
        device = request.q_index.device
        if pattern.kind == "strided":
            if request.is_plain_prefill:
                return cls(_strided_plain_block_mask(pattern, len(request.q_index), device), None, dense)
            dense_mask = request.dense(pattern)
            return cls(_block_mask_from_dense(dense_mask, _FLEX_BLOCK), None, lambda: dense_mask)
        if request.is_plain_prefill:
            block_mask, summary_index = _fixed_plain_block_mask(pattern, len(request.q_index), request.n_head, device)
        else:
            block_mask, summary_index = _fixed_general_block_mask(pattern, request)
        return cls(block_mask, summary_index, dense)


def _fixed_plain_block_mask(pattern: SparsePattern, n: int, n_head: int, device):
    """Fixed pattern, no padding, queries = keys = positions 0..n-1: the block structure by formula.

    Key layout ``[S_pad summary slots; n keys]``; block size ``b = gcd(l, 128)`` so blocks never straddle
    two pattern blocks. Query block ``qb`` (pattern block ``L``) visits summary slots ``< L*c`` and the key
    blocks of its own pattern block up to the diagonal.
    """
    l, c = pattern.block, pattern.summary
    size = math.gcd(l, _FLEX_BLOCK)
    slots, slot_pos = _summary_slots(pattern, -(-n // l), n_head, device)
    s_pad = _round_up(slots, size)
    q_blocks, kv_blocks = -(-n // size), (s_pad + _round_up(n, size)) // size
    qb = torch.arange(q_blocks, device=device)[:, None]
    kb = torch.arange(kv_blocks, device=device)[None, :]
    visible_slots = torch.clamp((qb * size) // l * c, max=slots)  # summary slots before the query's block
    in_summary = kb < s_pad // size
    summary_partial = in_summary & (kb * size < visible_slots)
    summary_full = in_summary & ((kb + 1) * size <= visible_slots)
    tb = kb - s_pad // size  # key block, in keys
    same_block = ~in_summary & ((tb * size) // l == (qb * size) // l) & (tb <= qb)
    ragged = (n % size != 0) & ((qb == q_blocks - 1) | (tb == q_blocks - 1))  # last blocks: let mask_mod trim
    partial = summary_partial | same_block
    full = summary_full | (same_block & (tb < qb) & ~ragged)

    # mask_mod runs element by element on every partial block (on CPU, ~2/3 of the time here), so it
    # looks the query's limits up rather than dividing; tensors rather than Python ints, which
    # torch.compile would specialise (one recompile per length).
    q_pos = torch.arange(_round_up(n, _FLEX_BLOCK), device=device)  # whole blocks: kernels may read past n
    first_key = (q_pos // l) * l + s_pad  # slot of the first key of the query's own block
    visible = (q_pos // l) * c  # summary slots before the query's block
    s_pad_t = torch.tensor(s_pad, device=device)

    def mask_mod(batch, head, q_idx, kv_idx):
        own_block = (kv_idx <= q_idx + s_pad_t) & (kv_idx >= first_key[q_idx])
        return torch.where(kv_idx >= s_pad_t, own_block, kv_idx < visible[q_idx])

    block_mask = _block_mask(partial[None, None], full[None, None], size, mask_mod, (n, s_pad + n))
    summary_index = F.pad(slot_pos, (0, s_pad - slots))[None]  # (1, H or 1, S_pad); pad slots are masked
    return block_mask, summary_index


def _fixed_general_block_mask(pattern: SparsePattern, request: _MaskRequest):
    """Fixed pattern with padding, a cache offset or extra rules: the slot-layout mask evaluated densely
    (``(B, H or 1, Q, S_pad + K)``), then reduced to blocks. Used for prompts and decoding steps."""
    device = request.q_index.device
    l, c = pattern.block, pattern.summary
    positions = request.positions.expand(request.batch_size, -1)  # (B, total)
    total = positions.shape[1]
    real = request.padding if request.padding is not None else torch.ones_like(positions, dtype=torch.bool)
    n_blocks = max(int(positions.max()) // l + 1, 0) if total else 0
    slots, slot_pos = _summary_slots(pattern, n_blocks, request.n_head, device)  # (H', S)
    s_pad = _round_up(slots, _FLEX_BLOCK)

    # Where each sequence position sits in the index range (only real tokens have one).
    index_of = torch.zeros(request.batch_size, total + 1, dtype=torch.long, device=device)
    target = torch.where(real, positions, torch.full_like(positions, total))
    index_of.scatter_(1, target, torch.arange(total, device=device).expand_as(positions))
    lengths = real.sum(-1)  # (B,)
    kv_offset = int(request.kv_index[0]) if len(request.kv_index) else 0
    slot_index = (
        index_of[:, None, :]
        .expand(-1, slot_pos.shape[0], -1)
        .gather(2, slot_pos.clamp(max=total)[None].expand(request.batch_size, -1, -1))
    )  # (B, H', S) absolute index of each slot's token
    slot_valid = (slot_pos[None] < lengths[:, None, None]) & (slot_index >= kv_offset)

    batch = torch.arange(request.batch_size, device=device)[:, None, None, None]
    heads = torch.arange(slot_pos.shape[0], device=device)[None, :, None, None]
    q_index = request.q_index[None, None, :, None]
    q_pos = positions[:, request.q_index][:, None, :, None]  # (B, 1, Q, 1)
    summary = (
        slot_valid[:, :, None, :]
        & ((torch.arange(slots, device=device) // c)[None, None, None, :] < q_pos // l)
        & request.base(batch, heads, q_index, slot_index[:, :, None, :])
    )
    kv_pos = positions[:, request.kv_index][:, None, None, :]  # (B, 1, 1, K)
    same_block = (kv_pos // l == q_pos // l) & (kv_pos <= q_pos)
    local = same_block & request.base(batch, heads[:, :1], q_index, request.kv_index)
    summary = F.pad(summary, (0, s_pad - slots))
    dense = torch.cat([summary, local.expand(-1, summary.shape[1], -1, -1)], dim=-1)
    summary_index = F.pad((slot_index - kv_offset).clamp(min=0), (0, s_pad - slots))
    return _block_mask_from_dense(dense, _FLEX_BLOCK), summary_index


def _strided_plain_block_mask(pattern: SparsePattern, n: int, device):
    """Strided pattern, no padding: blocks on or below the diagonal; full where wholly within the band."""
    size, stride = _FLEX_BLOCK, pattern.block
    blocks = -(-n // size)
    qb, kb = torch.arange(blocks, device=device)[:, None], torch.arange(blocks, device=device)[None, :]
    partial = kb <= qb
    # (q - k) over the tile spans [(qb - kb) * size - size + 1, (qb - kb) * size + size - 1]
    full = (kb < qb) & ((qb - kb) * size + size - 1 < stride)
    full &= ~((n % size != 0) & (qb == blocks - 1))
    # Every visited block but the band's is partial: look residues up instead of a modulo per element.
    residue = torch.arange(_round_up(n, size), device=device) % stride  # whole blocks: kernels may read past n
    stride_t = torch.tensor(stride, device=device)

    def mask_mod(batch, head, q_idx, kv_idx):
        near = kv_idx > q_idx - stride_t
        return (kv_idx <= q_idx) & (near | (residue[q_idx] == residue[kv_idx]))

    return _block_mask(partial[None, None], full[None, None], size, mask_mod, (n, n))


# --------------------------------------------------------------------------------------------
# The "split" backend: the pattern cut into dense pieces for the fused CPU kernel, merged exactly
# --------------------------------------------------------------------------------------------
#
# Each pattern is a union of disjoint pieces that are each a plain (causal or full) attention between a
# regular slice of the queries and a regular slice of the keys. Every piece runs through SDPA's fused CPU
# kernel, which returns its log-sum-exp; the pieces are merged exactly by their log-sum-exps (as flash
# attention merges its tiles). The backward pass gives each piece the *merged* output and log-sum-exp,
# which makes each piece's kernel backward the exact gradient of its share.
#
# fixed (l, c), sequence padded to N = nb * l, keys laid out as [summaries of blocks 0..nb-2; keys]:
#   own    the query's block, causal                 nb groups of l x l
#   sum b  block b against the summaries before it   one piece per block b >= 1: l x (b * c)
# strided (l), sequence padded to N = nb * l, viewed as an (nb, l) grid:
#   own    the query's block, causal                 (the previous l positions that share its block)
#   prev   block b >= 1 against block b - 1, keys after the query's offset (k > q within the block), run
#          causally on both sides reversed (offsets 0..l-2 against 1..l-1)
#   class  the grid's columns (positions equal modulo l), strictly causal: elements 1.. against 0..


@dataclass(frozen=True)
class _Piece:
    """One dense piece of a split pattern.

    ``queries`` and ``keys`` map a full ``(B, H, length, d)`` tensor (queries, or the laid-out keys) to a
    ``(B, H, groups, piece length, d)`` view; ``reverse`` runs the piece with both lengths reversed.
    """

    queries: Callable[[torch.Tensor], torch.Tensor]
    keys: Callable[[torch.Tensor], torch.Tensor]
    causal: bool
    reverse: bool = False

    def pack(self, view: torch.Tensor) -> torch.Tensor:
        """``(B, H, G, L, d)`` view -> ``(B, H * G, L, d)`` input of the fused kernel."""
        if self.reverse:
            view = view.flip(3)
        b, h, g, n, d = view.shape
        return view.reshape(b, h * g, n, d)

    def unpack(self, packed: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Kernel output ``(B, H * G, L, d)`` -> the ``(B, H, G, L, d)`` layout of the view ``like``."""
        out = packed.reshape(like.shape)
        return out.flip(3) if self.reverse else out


def _blocks(x: torch.Tensor, l: int) -> torch.Tensor:
    return x.view(x.shape[0], x.shape[1], x.shape[2] // l, l, x.shape[3])


def _fixed_pieces(n_blocks: int, l: int, c: int, summaries: int) -> list[_Piece]:
    pieces = [_Piece(lambda x: _blocks(x, l), lambda x: _blocks(x[:, :, summaries:], l), causal=True)]
    for b in range(1, n_blocks):
        pieces.append(
            _Piece(
                lambda x, b=b: x[:, :, b * l : (b + 1) * l].unsqueeze(2),
                lambda x, b=b: x[:, :, : b * c].unsqueeze(2),
                causal=False,
            )
        )
    return pieces


def _strided_pieces(n_blocks: int, l: int) -> list[_Piece]:
    pieces = [_Piece(lambda x: _blocks(x, l), lambda x: _blocks(x, l), causal=True)]
    if n_blocks > 1 and l > 1:
        pieces.append(
            _Piece(lambda x: _blocks(x, l)[:, :, 1:, : l - 1], lambda x: _blocks(x, l)[:, :, :-1, 1:], True, True)
        )
    if n_blocks > 1:
        columns = lambda x: _blocks(x, l).transpose(2, 3)  # noqa: E731  (B, H, l, nb, d)
        pieces.append(_Piece(lambda x: columns(x)[:, :, :, 1:], lambda x: columns(x)[:, :, :, :-1], causal=True))
    return pieces


def _fused_forward(q, k, v, causal: bool, scale):
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal, scale=scale)


class _SplitAttention(torch.autograd.Function):
    """Exact attention over the union of disjoint pieces; forward and backward by SDPA's fused CPU kernel."""

    @staticmethod
    def forward(ctx, query, keys, values, pieces, scale):
        out = torch.empty_like(query)
        # The kernel's log-sum-exp is float32 for half-precision inputs (float64 for float64 ones).
        lse = query.new_empty(query.shape[:3] + (1,), dtype=torch.promote_types(query.dtype, torch.float32))
        for piece in pieces:
            o, l = _fused_forward(
                piece.pack(piece.queries(query)), piece.pack(piece.keys(keys)), piece.pack(piece.keys(values)),
                piece.causal, scale,
            )  # fmt: skip
            out_view, lse_view = piece.queries(out), piece.queries(lse)
            o, l = piece.unpack(o, out_view), piece.unpack(l.unsqueeze(-1), lse_view)
            if piece is pieces[0]:  # the first piece covers every row
                out_view.copy_(o)
                lse_view.copy_(l)
                continue
            merged = torch.logaddexp(lse_view, l)  # every piece row has keys: l is finite
            out_view.mul_(torch.exp(lse_view - merged)).add_(o * torch.exp(l - merged))
            lse_view.copy_(merged)
        ctx.save_for_backward(query, keys, values, out, lse)
        ctx.pieces, ctx.scale = pieces, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        query, keys, values, out, lse = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grads = [torch.zeros_like(t) for t in (query, keys, values)]
        for piece in ctx.pieces:
            q_view, k_view = piece.queries(query), piece.keys(keys)
            dq, dk, dv = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                piece.pack(piece.queries(grad_out)),
                piece.pack(q_view),
                piece.pack(k_view),
                piece.pack(piece.keys(values)),
                piece.pack(piece.queries(out)),
                piece.pack(piece.queries(lse)).squeeze(-1).contiguous(),
                0.0,
                piece.causal,
                scale=ctx.scale,
            )
            piece.queries(grads[0]).add_(piece.unpack(dq, q_view))
            piece.keys(grads[1]).add_(piece.unpack(dk, k_view))
            piece.keys(grads[2]).add_(piece.unpack(dv, k_view))
        return grads[0], grads[1], grads[2], None, None


@dataclass
class SplitSparseMask(_DenseFallback):
    """What the ``"split"`` backend hands each attention layer: the pattern of an unpadded prefill.

    Args:
        pattern (`SparsePattern`): the pattern and its sizes.
        length (`int`): queries = keys = positions ``0..length-1``.
        dense (`Callable`): the ``"sdpa"`` backend's boolean mask, made on demand for the dropout fallback.
    """

    pattern: SparsePattern
    length: int
    dense: Callable[[], torch.Tensor]
    _dense: torch.Tensor | None = field(default=None, repr=False)


def _split_forward(query, key, value, mask: SplitSparseMask, scaling) -> torch.Tensor:
    pattern, n = mask.pattern, query.shape[2]
    if key.shape[2] != n or n != mask.length:
        raise MaiaInputError(
            f"the split sparse mask was made for {mask.length} tokens, the layer got {n} and {key.shape[2]}"
        )
    l = pattern.block
    n_blocks = -(-n // l)
    pad = (0, 0, 0, n_blocks * l - n)
    query, key, value = (F.pad(t, pad) if pad[3] else t.contiguous() for t in (query, key, value))
    if pattern.kind == "strided":
        pieces = _strided_pieces(n_blocks, l)
    else:
        slots, slot_pos = _summary_slots(pattern, n_blocks, query.shape[1], query.device)  # (H or 1, S)
        if slot_pos.shape[0] == 1:
            gather = lambda t: t[:, :, slot_pos[0]]  # noqa: E731
        else:
            index = slot_pos[None, :, :, None].expand(query.shape[0], -1, -1, query.shape[3])
            gather = lambda t: t.gather(2, index)  # noqa: E731
        key, value = (torch.cat([gather(t), t], dim=2) for t in (key, value))
        pieces = _fixed_pieces(n_blocks, l, pattern.summary, slots)
    output = _SplitAttention.apply(query, key, value, pieces, scaling)
    return output[:, :, :n].transpose(1, 2).contiguous()


# --------------------------------------------------------------------------------------------
# The attention function (both names, every backend)
# --------------------------------------------------------------------------------------------

_compiled_flex = None
_warned: set[str] = set()


def _flex_attention():
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    if not COMPILE_FLEX:
        return flex_attention
    if _compiled_flex is None:
        _compiled_flex = torch.compile(flex_attention, dynamic=None)
    return _compiled_flex


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        warnings.warn(message, UserWarning, stacklevel=4)
        _warned.add(key)


def _flex_unavailable_reason(query, key, value, dropout: float) -> str | None:
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
    if needs_grad and query.device.type == "cpu":
        return "FlexAttention has no backward pass on CPU in torch " + torch.__version__.split("+")[0]
    if dropout > 0:
        return f"FlexAttention has no attention dropout (attn_pdrop={dropout})"
    return None


def sparse_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | FlexSparseMask | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """``AttentionInterface`` function of ``maia_sparse_fixed`` and ``maia_sparse_strided``.

    Args:
        query, key, value (`torch.Tensor` of shape `(batch, heads, length, head_dim)`): keys and values
            include the cache.
        attention_mask (`torch.Tensor` or `FlexSparseMask`): what the registered mask function made.

    Returns:
        ``(output, None)``, the output of shape `(batch, q_length, heads, head_dim)`.
    """
    if attention_mask is None:
        raise MaiaInputError(
            "the sparse attention received no mask: register 'maia_sparse_*' in AttentionMaskInterface too "
            "(import maia_hf does), or pass a 4D mask"
        )
    if isinstance(attention_mask, FlexSparseMask):
        reason = _flex_unavailable_reason(query, key, value, dropout)
        if reason is None:
            return _flex_forward(query, key, value, attention_mask, scaling), None
        _warn_once(
            reason,
            f"maia sparse attention: {reason}; computing with SDPA and a boolean mask instead (same result, "
            "dense cost). For training on CPU set sparse_backend='sdpa'.",
        )
        attention_mask = attention_mask.dense_mask()
    if isinstance(attention_mask, SplitSparseMask):
        if dropout == 0:
            return _split_forward(query, key, value, attention_mask, scaling), None
        _warn_once(
            "split-dropout",
            f"maia sparse attention: the split backend has no attention dropout (attn_pdrop={dropout}); computing "
            "with SDPA and a boolean mask instead (same result, dense cost).",
        )
        attention_mask = attention_mask.dense_mask()
    output = F.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling
    )
    return output.transpose(1, 2).contiguous(), None


def _flex_forward(query, key, value, mask: FlexSparseMask, scaling) -> torch.Tensor:
    if mask.summary_index is not None:
        b, h, _, d = key.shape
        index = mask.summary_index.to(key.device)
        index = index.expand(b, h, -1)[..., None].expand(-1, -1, -1, d)  # (B, H, S_pad, d)
        key = torch.cat([key.gather(2, index), key], dim=2)
        value = torch.cat([value.gather(2, index), value], dim=2)
    output = _flex_attention()(query, key, value, block_mask=mask.block_mask, scale=scaling)
    return output.transpose(1, 2).contiguous()
