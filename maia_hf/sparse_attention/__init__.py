"""Sparse Transformer attention (Child et al., 2019), registered into `transformers` by `maia_hf.registration`.

``maia_sparse_fixed`` and ``maia_sparse_strided`` each have a mask function (`fixed_mask_interface`,
`strided_mask_interface`) and share the attention function `sparse_attention_forward`. `SparsePattern`
(in ``configuration_maia``) holds the pattern's sizes; the backend is ``"sdpa"`` (``masks.py``), ``"split"``
(``split.py``) or ``"flex"`` (``flex.py``). docs/sparse_attention.md explains the patterns, what each
backend costs and when it falls back.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..configuration_maia import SPARSE_BACKENDS, SparsePattern, fixed_allows, strided_allows
from ..errors import MaiaInputError
from .flex import _FLEX_BLOCK, FlexSparseMask, _flex_forward, _flex_unavailable_reason
from .masks import _MaskRequest, fixed_pattern_mask, strided_pattern_mask
from .split import SplitSparseMask, _split_forward

__all__ = [
    "BACKENDS",
    "COMPILE_FLEX",
    "FLEX_MIN_QUERIES",
    "FlexSparseMask",
    "SparsePattern",
    "SplitSparseMask",
    "fixed_allows",
    "fixed_mask_interface",
    "fixed_pattern_mask",
    "sparse_attention_forward",
    "strided_allows",
    "strided_mask_interface",
    "strided_pattern_mask",
]

BACKENDS = SPARSE_BACKENDS
# FlexAttention skips masked blocks only when compiled; uncompiled it is a dense reference (tests use it).
COMPILE_FLEX = True
# Fewer queries than this (decoding steps, short prompts) form a single query block: FlexAttention would
# save nothing over SDPA's O(queries x keys) there, and each new shape costs a torch.compile
# specialisation. Such calls use the "sdpa" path.
FLEX_MIN_QUERIES = _FLEX_BLOCK

_warned: set[str] = set()


def _warn_once(key: str, message: str, stacklevel: int = 4) -> None:
    """Warn the first time ``key`` happens in this process."""
    if key not in _warned:
        warnings.warn(message, UserWarning, stacklevel=stacklevel)
        _warned.add(key)


def _backend_mask(pattern: SparsePattern, request: _MaskRequest):
    """The mask of the configured backend, or the ``"sdpa"`` boolean mask where that backend cannot run."""
    if pattern.backend == "flex" and len(request.q_index) >= FLEX_MIN_QUERIES:
        return FlexSparseMask.build(pattern, request)
    if pattern.backend == "split" and request.is_plain_prefill:
        if request.q_index.device.type == "cpu":
            return SplitSparseMask(pattern, len(request.q_index), lambda: request.dense(pattern))
        _warn_once(
            "split-device",
            f"maia sparse attention: sparse_backend='split' runs on CPU only; on {request.q_index.device} the "
            "'sdpa' path computes it (same result, dense cost). Use sparse_backend='flex' on a GPU.",
            stacklevel=5,  # called one frame below the mask function
        )
    return request.dense(pattern)


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
        return _backend_mask(SparsePattern.from_config(config, kind), request)

    mask_interface.__name__ = mask_interface.__qualname__ = f"{kind}_mask_interface"
    mask_interface.__doc__ = (
        f"``AttentionMaskInterface`` function of ``maia_sparse_{kind}``: a boolean ``(B, H or 1, Q, K)`` mask "
        "(``sparse_backend='sdpa'``), a `SplitSparseMask` (``'split'``) or a `FlexSparseMask` (``'flex'``)."
    )
    return mask_interface


fixed_mask_interface = _mask_interface_for("fixed")
strided_mask_interface = _mask_interface_for("strided")


def sparse_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | FlexSparseMask | SplitSparseMask | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """``AttentionInterface`` function of ``maia_sparse_fixed`` and ``maia_sparse_strided``.

    Args:
        query, key, value (`torch.Tensor` of shape `(batch, heads, length, head_dim)`): keys and values
            include the cache.
        attention_mask (`torch.Tensor`, `FlexSparseMask` or `SplitSparseMask`): what the registered mask
            function made.

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
            return _flex_forward(query, key, value, attention_mask, scaling, COMPILE_FLEX), None
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
