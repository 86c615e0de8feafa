"""The ``"split"`` backend: the pattern cut into dense tiles for SDPA's fused CPU kernel, merged exactly.

Each pattern is a union of disjoint tiles that are each a plain (causal or full) attention between a
regular slice of the queries and a regular slice of the keys. Every tile runs through SDPA's fused CPU
kernel, which returns its log-sum-exp, and the tiles are merged exactly by their log-sum-exps (as flash
attention merges its blocks). The backward pass gives each tile the *merged* output and log-sum-exp,
which makes each tile's kernel backward the exact gradient of its share.

fixed (l, c), sequence padded to N = nb * l, keys laid out as [summaries of blocks 0..nb-2; keys]:

    own    the query's block, causal                 nb groups of l x l
    sum b  block b against the summaries before it   one tile per block b >= 1: l x (b * c)

strided (l), sequence padded to N = nb * l, viewed as an (nb, l) grid:

    own    the query's block, causal                 (the previous l positions that share its block)
    prev   block b >= 1 against block b - 1, keys after the query's offset (k > q within the block), run
           causally on both sides reversed (offsets 0..l-2 against 1..l-1)
    class  the grid's columns (positions equal modulo l), strictly causal: elements 1.. against 0..
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..configuration_maia import SparsePattern
from ..errors import MaiaInputError
from .masks import _DenseFallback, _summary_slots

__all__ = ["SplitSparseMask"]


@dataclass(frozen=True)
class _Tile:
    """One dense tile of a split pattern.

    ``queries`` and ``keys`` map a full ``(B, H, length, d)`` tensor (queries, or the laid-out keys) to a
    ``(B, H, groups, tile length, d)`` view; ``reverse`` runs the tile with both lengths reversed.
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
    """``(B, H, nb * l, d)`` -> ``(B, H, nb, l, d)``."""
    return x.view(x.shape[0], x.shape[1], x.shape[2] // l, l, x.shape[3])


def _fixed_tiles(n_blocks: int, l: int, c: int, summaries: int) -> list[_Tile]:
    tiles = [_Tile(lambda x: _blocks(x, l), lambda x: _blocks(x[:, :, summaries:], l), causal=True)]
    for b in range(1, n_blocks):
        tiles.append(
            _Tile(
                lambda x, b=b: x[:, :, b * l : (b + 1) * l].unsqueeze(2),
                lambda x, b=b: x[:, :, : b * c].unsqueeze(2),
                causal=False,
            )
        )
    return tiles


def _strided_tiles(n_blocks: int, l: int) -> list[_Tile]:
    tiles = [_Tile(lambda x: _blocks(x, l), lambda x: _blocks(x, l), causal=True)]
    if n_blocks > 1 and l > 1:
        tiles.append(
            _Tile(lambda x: _blocks(x, l)[:, :, 1:, : l - 1], lambda x: _blocks(x, l)[:, :, :-1, 1:], True, True)
        )
    if n_blocks > 1:
        columns = lambda x: _blocks(x, l).transpose(2, 3)  # noqa: E731  (B, H, l, nb, d)
        tiles.append(_Tile(lambda x: columns(x)[:, :, :, 1:], lambda x: columns(x)[:, :, :, :-1], causal=True))
    return tiles


def _fused_forward(q, k, v, causal: bool, scale):
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal, scale=scale)


class _SplitAttention(torch.autograd.Function):
    """Exact attention over the union of disjoint tiles; forward and backward by SDPA's fused CPU kernel."""

    @staticmethod
    def forward(ctx, query, keys, values, tiles, scale):
        out = torch.empty_like(query)
        # The kernel's log-sum-exp is float32 for half-precision inputs (float64 for float64 ones).
        lse = query.new_empty(query.shape[:3] + (1,), dtype=torch.promote_types(query.dtype, torch.float32))
        for tile in tiles:
            o, l = _fused_forward(
                tile.pack(tile.queries(query)), tile.pack(tile.keys(keys)), tile.pack(tile.keys(values)),
                tile.causal, scale,
            )  # fmt: skip
            out_view, lse_view = tile.queries(out), tile.queries(lse)
            o, l = tile.unpack(o, out_view), tile.unpack(l.unsqueeze(-1), lse_view)
            if tile is tiles[0]:  # the first tile covers every row
                out_view.copy_(o)
                lse_view.copy_(l)
                continue
            merged = torch.logaddexp(lse_view, l)  # every tile row has keys: l is finite
            out_view.mul_(torch.exp(lse_view - merged)).add_(o * torch.exp(l - merged))
            lse_view.copy_(merged)
        ctx.save_for_backward(query, keys, values, out, lse)
        ctx.tiles, ctx.scale = tiles, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        query, keys, values, out, lse = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grads = [torch.zeros_like(t) for t in (query, keys, values)]
        for tile in ctx.tiles:
            q_view, k_view = tile.queries(query), tile.keys(keys)
            dq, dk, dv = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                tile.pack(tile.queries(grad_out)),
                tile.pack(q_view),
                tile.pack(k_view),
                tile.pack(tile.keys(values)),
                tile.pack(tile.queries(out)),
                tile.pack(tile.queries(lse)).squeeze(-1).contiguous(),
                0.0,
                tile.causal,
                scale=ctx.scale,
            )
            tile.queries(grads[0]).add_(tile.unpack(dq, q_view))
            tile.keys(grads[1]).add_(tile.unpack(dk, k_view))
            tile.keys(grads[2]).add_(tile.unpack(dv, k_view))
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
    """``(B, H, n, d)`` queries, keys and values -> ``(B, n, H, d)``."""
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
        tiles = _strided_tiles(n_blocks, l)
    else:
        slots, slot_pos = _summary_slots(pattern, n_blocks, query.shape[1], query.device)  # (H or 1, S)
        if slot_pos.shape[0] == 1:
            gather = lambda t: t[:, :, slot_pos[0]]  # noqa: E731
        else:
            index = slot_pos[None, :, :, None].expand(query.shape[0], -1, -1, query.shape[3])
            gather = lambda t: t.gather(2, index)  # noqa: E731
        key, value = (torch.cat([gather(t), t], dim=2) for t in (key, value))
        tiles = _fixed_tiles(n_blocks, l, pattern.summary, slots)
    output = _SplitAttention.apply(query, key, value, tiles, scaling)
    return output[:, :, :n].transpose(1, 2).contiguous()
