"""The ``"flex"`` backend: FlexAttention with a `BlockMask` that skips the blocks the pattern masks.

For *fixed*, the summary keys are gathered in front of the keys (``[summaries; keys]``) so that they fill
whole blocks; *strided* keeps the natural layout. docs/sparse_attention.md explains the layout and the
fallbacks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..configuration_maia import SparsePattern
from .masks import _DenseFallback, _MaskRequest, _summary_slots

__all__ = ["FlexSparseMask"]

_FLEX_BLOCK = 128  # FlexAttention's default block: queries and keys are visited 128 at a time


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

    # mask_mod runs element by element on every partial block, so it looks the query's limits up rather
    # than dividing; tensors rather than Python ints, which torch.compile would specialise (one recompile
    # per length).
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
# Running it
# --------------------------------------------------------------------------------------------

_compiled_flex = None


def _flex_attention(compiled: bool):
    """FlexAttention, compiled once per process (uncompiled it visits every block: a dense reference)."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    if not compiled:
        return flex_attention
    if _compiled_flex is None:
        _compiled_flex = torch.compile(flex_attention, dynamic=None)
    return _compiled_flex


def _flex_unavailable_reason(query, key, value, dropout: float) -> str | None:
    """Why FlexAttention cannot compute this call (then the ``"sdpa"`` path does), or None."""
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
    if needs_grad and query.device.type == "cpu":
        return "FlexAttention has no backward pass on CPU in torch " + torch.__version__.split("+")[0]
    if dropout > 0:
        return f"FlexAttention has no attention dropout (attn_pdrop={dropout})"
    return None


def _flex_forward(query, key, value, mask: FlexSparseMask, scaling, compiled: bool) -> torch.Tensor:
    """``(B, H, Q, d)`` queries, ``(B, H, K, d)`` keys and values -> ``(B, Q, H, d)``."""
    if mask.summary_index is not None:
        b, h, _, d = key.shape
        index = mask.summary_index.to(key.device)
        index = index.expand(b, h, -1)[..., None].expand(-1, -1, -1, d)  # (B, H, S_pad, d)
        key = torch.cat([key.gather(2, index), key], dim=2)
        value = torch.cat([value.gather(2, index), value], dim=2)
    output = _flex_attention(compiled)(query, key, value, block_mask=mask.block_mask, scale=scaling)
    return output.transpose(1, 2).contiguous()
