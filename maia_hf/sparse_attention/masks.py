"""Dense boolean masks of the sparse patterns: the ``"sdpa"`` backend, and the reference the others equal.

`_MaskRequest` turns what ``create_causal_mask`` hands an ``AttentionMaskInterface`` function into
positions within each sequence; the ``"flex"`` and ``"split"`` masks build on it and on `_DenseFallback`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..configuration_maia import SparsePattern, _summary_start, fixed_allows, strided_allows

__all__ = ["fixed_pattern_mask", "strided_pattern_mask"]


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

    Args:
        seq_len (`int`): sequence length.
        stride (`int`): the stride ``l``.

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
    SparsePattern("strided", stride)  # validates
    pos = torch.arange(seq_len)
    return strided_allows(pos[:, None], pos[None, :], stride)


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


class _DenseFallback:
    """The ``"sdpa"`` backend's boolean mask of a fast-path mask, made once, on demand (fallbacks)."""

    dense: Callable[[], torch.Tensor]
    _dense: torch.Tensor | None

    def dense_mask(self) -> torch.Tensor:
        if self._dense is None:
            self._dense = self.dense()
        return self._dense


def _summary_slots(pattern: SparsePattern, n_blocks: int, n_head: int, device) -> tuple[int, torch.Tensor]:
    """Summary slots for blocks ``0..n_blocks-2`` (the last block's summary is never needed as a summary).

    The ``"flex"`` and ``"split"`` backends gather these keys in front of the keys, ``[summaries; keys]``.
    Returns the slot count ``S`` and the sequence position of each slot, ``(H or 1, S)``.
    """
    l, c = pattern.block, pattern.summary
    slots = max(n_blocks - 1, 0) * c
    s = torch.arange(slots, device=device)[None, :]
    heads = torch.arange(n_head if pattern.varies_by_head else 1, device=device)[:, None]
    start = _summary_start(l, c, heads if pattern.varies_by_head else None)
    return slots, ((s // c) * l + start + s % c).expand(heads.shape[0], -1)
