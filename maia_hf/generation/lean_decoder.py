"""The lean GPT-2 decoder behind :func:`~maia_hf.generation.sample`: a `MaiaForCausalLM`'s own operations
on preallocated keys and values, without transformers' per-layer machinery.

For the fixed sparse pattern the buffers are kept **compact**: a later query sees only the summary
positions of the blocks before its own and its own block's keys, so each row keeps those alone (the
summaries in block order, then the current block) and a step reads 176 keys instead of up to 512 at
this model's sizes (block 128, summary 16). The keys are the same, in another order; the logits agree
with the model's own to float rounding (tested).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["LeanGPT2Decoder"]


class _BlockTensors(NamedTuple):
    """One GPT-2 block's tensors and functions, looked up once so that each step runs them directly."""

    ln_1: tuple  # (normalized_shape, weight, bias, eps) for F.layer_norm
    attn_bias: torch.Tensor
    attn_weight: torch.Tensor  # (n_embd, 3 * n_embd): q, k and v at once
    split_size: int
    scaling: float
    attn_proj_bias: torch.Tensor
    attn_proj_weight: torch.Tensor
    ln_2: tuple
    fc_bias: torch.Tensor
    fc_weight: torch.Tensor
    act: object
    mlp_proj_bias: torch.Tensor
    mlp_proj_weight: torch.Tensor

    @classmethod
    def of(cls, block) -> _BlockTensors:
        ln_1, attn, ln_2, mlp = block.ln_1, block.attn, block.ln_2, block.mlp
        return cls(
            (ln_1.normalized_shape, ln_1.weight, ln_1.bias, ln_1.eps),
            attn.c_attn.bias, attn.c_attn.weight, attn.split_size, attn.scaling,
            attn.c_proj.bias, attn.c_proj.weight,
            (ln_2.normalized_shape, ln_2.weight, ln_2.bias, ln_2.eps),
            mlp.c_fc.bias, mlp.c_fc.weight, mlp.act, mlp.c_proj.bias, mlp.c_proj.weight,
        )  # fmt: skip


class LeanGPT2Decoder:
    """Incremental decoding of a `MaiaForCausalLM` without transformers' per-layer machinery.

    The prompt runs through the model itself (its own forward and cache); each new token then runs the
    same operations, in the same order and with the same kernels (``addmm``, ``layer_norm``, SDPA), on
    preallocated key/value buffers instead of a growing cache. The logits are the model's own (tested);
    what goes is the Python work around them, about half the time of a decoding step for a 5 M-parameter
    model on a CPU. With the fixed sparse pattern each row keeps only the keys later queries may see
    (see the module's docstring); other patterns keep every key and apply the pattern as a mask.

    Args:
        model (`MaiaForCausalLM`): in eval mode, see :meth:`applies`.
        batch (`int`): sequences decoded together.
        total_length (`int`): prompt and new tokens, at most the model's ``n_positions``.

    Example:

    ```python
    >>> import torch
    >>> from maia_hf import MaiaConfig, MaiaForCausalLM
    >>> from maia_hf.generation.lean_decoder import LeanGPT2Decoder
    >>> config = MaiaConfig(vocab_size=300, n_layer=1, n_head=2, n_embd=16, n_inner=32, n_positions=16)
    >>> model = MaiaForCausalLM(config).eval()
    >>> ids = torch.tensor([[2, 40, 41, 42]])
    >>> decoder = LeanGPT2Decoder(model, batch=1, total_length=4)
    >>> with torch.inference_mode():
    ...     steps = [decoder.prefill(ids[:, :3]), decoder.step(ids[:, 3])]
    ...     full = model(input_ids=ids).logits
    >>> torch.allclose(steps[1], full[:, 3], atol=1e-5)
    True

    ```
    """

    IMPLEMENTATIONS = ("sdpa", "maia_sparse_fixed", "maia_sparse_strided")

    @classmethod
    def applies(cls, model, total_length: int) -> bool:
        """Whether this decoder gives ``model``'s logits for a sequence of ``total_length`` tokens."""
        from ..modeling_maia import MaiaForCausalLM

        config = getattr(model, "config", None)
        return (
            isinstance(model, MaiaForCausalLM)
            and not model.training
            and config._attn_implementation in cls.IMPLEMENTATIONS
            and not config.add_cross_attention
            and total_length <= config.n_positions
        )

    def __init__(self, model, batch: int, total_length: int):
        from ..sparse_attention import SparsePattern

        config = model.config
        self.model, self.transformer = model, model.transformer
        self.n_head, self.head_dim = config.n_head, config.n_embd // config.n_head
        self.pattern = None
        if config._attn_implementation.startswith("maia_sparse_"):
            self.pattern = SparsePattern.from_config(config, config._attn_implementation[len("maia_sparse_") :])
        pattern = self.pattern
        self.compact = pattern is not None and pattern.kind == "fixed" and not pattern.varies_by_head
        first = next(model.parameters())
        shape = (len(self.transformer.h), batch, self.n_head, total_length, self.head_dim)  # (L, B, nh, slot, hs)
        # Compact rows attend over slots other rows may not have filled: zeros, never uninitialised memory.
        self.keys = (torch.zeros if self.compact else torch.empty)(shape, dtype=first.dtype, device=first.device)
        self.values = torch.zeros_like(self.keys) if self.compact else torch.empty_like(self.keys)
        self.length = 0  # slots of the sequence written so far, pads included
        self.blocks = [_BlockTensors.of(block) for block in self.transformer.h]
        # The pattern's (heads or 1, query, key) mask over every position this decoder will reach.
        self.pattern_rows = None
        if pattern is not None and not self.compact:
            heads = torch.arange(self.n_head if pattern.varies_by_head else 1, device=first.device)
            positions = torch.arange(total_length, device=first.device)
            rows = pattern.allows(heads[:, None, None], positions[:, None], positions[None, :])
            self.pattern_rows = torch.broadcast_to(rows, (len(heads), total_length, total_length))
        # Left padding (rows of different lengths, see prefill): each row's pads, and (full buffers) its
        # (B, H or 1, slot, slot) mask over the buffer's slots at its own sequence positions.
        self.pads = self.row_masks = None
        # Compact buffers: the keys each row keeps (an int while every row keeps as many) and the rows.
        self.kept: int | torch.Tensor = 0
        self.rows = torch.arange(batch, device=first.device)
        # A model with the sounding-notes input: each row's (B, P) pitch counts after its last word.
        self.sounding = getattr(model, "sounding", None)
        self.counts = None

    def prefill(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Run the prompt (B, T) through the model; keep its keys and values; return the last logits (B, V).

        ``attention_mask`` (B, T), 0 on pads, allows rows of different lengths, padded on the left: each row
        runs through the model alone, at positions 0, 1, ... of its own tokens, and every later step of the
        row sees its own tokens only, at those positions. Its logits are those of the row decoded alone.
        """
        n = input_ids.shape[1]
        if attention_mask is not None and not bool(attention_mask.bool().all()):
            return self._prefill_padded(input_ids, attention_mask.bool())
        out = self.model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
        if self.sounding is not None:
            self.counts = self.sounding.counts(input_ids)[:, -1]
        seen = self._seen_later(n, input_ids.device) if self.compact else None
        for i, layer in enumerate(out.cache.layers):
            if seen is None:
                self.keys[i, :, :, :n], self.values[i, :, :, :n] = layer.keys, layer.values
            else:
                self.keys[i, :, :, : len(seen)] = layer.keys.index_select(2, seen)
                self.values[i, :, :, : len(seen)] = layer.values.index_select(2, seen)
        self.length, self.kept = n, (0 if seen is None else len(seen))
        return out.logits[:, -1]

    def _prefill_padded(self, input_ids: torch.LongTensor, real: torch.BoolTensor) -> torch.Tensor:
        pads = (~real).sum(dim=1)
        if not bool((real == (torch.arange(real.shape[1], device=real.device)[None, :] >= pads[:, None])).all()):
            raise ValueError("the attention mask must pad on the left only (zeros, then ones)")
        logits, kept, width = [], [], input_ids.shape[1]
        for row, pad in enumerate(pads.tolist()):
            out = self.model(input_ids=input_ids[row : row + 1, pad:], use_cache=True, logits_to_keep=1)
            seen = self._seen_later(width - pad, input_ids.device) if self.compact else None
            for i, layer in enumerate(out.cache.layers):
                if seen is not None:
                    self.keys[i, row, :, : len(seen)] = layer.keys[0].index_select(1, seen)
                    self.values[i, row, :, : len(seen)] = layer.values[0].index_select(1, seen)
                    continue
                self.keys[i, row, :, :pad] = 0  # masked, but never uninitialised memory (0 x NaN is NaN)
                self.values[i, row, :, :pad] = 0
                self.keys[i, row, :, pad:width], self.values[i, row, :, pad:width] = layer.keys[0], layer.values[0]
            kept.append(0 if seen is None else len(seen))
            logits.append(out.logits[0, -1])
        self.pads, self.length = pads, width
        if self.sounding is not None:  # pads are no notes: the whole row counts as the row alone
            self.counts = self.sounding.counts(input_ids)[:, -1]
        if self.compact:
            self.kept = torch.tensor(kept, device=input_ids.device)
        else:
            self.row_masks = self._row_masks(pads)
        return torch.stack(logits)

    def _row_masks(self, pads: torch.Tensor) -> torch.Tensor:
        """Full buffers with pads: each row's (B, H or 1, slot, slot) mask at its own sequence positions."""
        total, device = self.keys.shape[3], pads.device
        position = torch.arange(total, device=device)[None, :] - pads[:, None]  # (B, slot): the row's position
        q, k = position[:, None, :, None], position[:, None, None, :]
        if self.pattern is not None:
            heads = torch.arange(self.n_head if self.pattern.varies_by_head else 1, device=device)[None, :, None, None]
            allowed = self.pattern.allows(heads, q.clamp(min=0), k.clamp(min=0))
        else:
            allowed = k <= q
        return allowed & (k >= 0)

    def _seen_later(self, n: int, device) -> torch.Tensor:
        """Positions among ``0..n-1`` that a query at position ``n`` or later may see (fixed pattern), in
        order: the summaries of the blocks before position ``n``'s, then that block's positions."""
        block, summary = self.pattern.block, self.pattern.summary
        positions = torch.arange(n, device=device)
        own_block = positions >= (n // block) * block
        return positions[own_block | (positions % block >= block - summary)]

    def retain(self, rows: torch.Tensor) -> None:
        """Decode only ``rows`` (a (B,) boolean mask or indices) from now on; the other rows' buffers go.

        A finished sequence of a batch (best-of-N) stops costing a decoding step; the rows kept go on as
        they were, in their order.
        """
        self.keys, self.values = self.keys[:, rows], self.values[:, rows]
        if self.pads is not None:
            self.pads = self.pads[rows]
            if self.row_masks is not None:
                self.row_masks = self.row_masks[rows]
        if isinstance(self.kept, torch.Tensor):
            self.kept = self.kept[rows]
        if self.counts is not None:
            self.counts = self.counts[rows]
        self.rows = torch.arange(self.keys.shape[1], device=self.keys.device)

    def step(self, tokens: torch.LongTensor) -> torch.Tensor:
        """Logits (B, V) after appending ``tokens`` (B,), one per sequence.

        The operations of GPT-2's blocks as transformers runs them (``Conv1D`` is ``addmm`` on the 2D
        view; ``LayerNorm`` is ``layer_norm``), minus the module calls around them.
        """
        t = self.transformer
        slot = self.length  # the buffer's slot; a row's own position is ``slot - pads``
        position = slot if self.pads is None else slot - self.pads
        if self.pads is None:
            hidden = t.wte(tokens[:, None]) + t.wpe.weight[position]  # (B, 1, C)
        else:
            hidden = t.wte(tokens[:, None]) + t.wpe.weight[position][:, None]
        if self.sounding is not None:
            self.counts = self.sounding.step(self.counts, tokens)
            hidden = hidden + self.sounding(self.counts)[:, None]
        batch = hidden.shape[0]
        if self.compact:
            write, seen, mask = self._compact_slots(position)
        else:
            write, seen, mask = slot, slot + 1, None
            if self.pads is not None:
                mask = self.row_masks[:, :, slot : slot + 1, : slot + 1]
            elif self.pattern_rows is not None:
                mask = self.pattern_rows[None, :, slot : slot + 1, : slot + 1].expand(batch, -1, -1, -1)
        for i, block in enumerate(self.blocks):
            hidden = self._block(i, block, hidden, write, seen, mask)
        self.length += 1
        return self.model.lm_head(t.ln_f(hidden))[:, -1]

    def _compact_slots(self, position):
        """Compact buffers: move a finished block's summary next to the earlier ones where ``position``
        (an int, or each row's) begins a block; return where the new keys go, the slots to attend over
        and the mask of those each row has filled (None when every row has filled them all)."""
        block, summary = self.pattern.block, self.pattern.summary
        start = block - summary  # of the summary within its block
        # The block before ``position`` is whole in the buffer unless the prefill ended with it (and kept
        # its summary alone already).
        if isinstance(position, int):
            base = summary * (position // block - 1)
            if position and position % block == 0 and self.kept > base + summary:
                self._move(slice(None), base + start, base, summary)
                self.kept = base + summary
            self.kept += 1
            return self.kept - 1, self.kept, None
        base = summary * (position // block - 1)
        whole = (position % block == 0) & (position > 0) & (self.kept > base + summary)
        for row in whole.nonzero().flatten().tolist():
            self._move(row, int(base[row]) + start, int(base[row]), summary)
            self.kept[row] = base[row] + summary
        write = self.kept.clone()
        self.kept += 1
        seen = int(self.kept.max())
        mask = None
        if not bool((self.kept == seen).all()):
            mask = (torch.arange(seen, device=position.device)[None, :] < self.kept[:, None])[:, None, None, :]
        return write, seen, mask

    def _move(self, rows, source: int, target: int, length: int) -> None:
        if source == target:
            return
        for buffer in (self.keys, self.values):
            buffer[:, rows, :, target : target + length] = buffer[:, rows, :, source : source + length].clone()

    def _block(self, i: int, b: _BlockTensors, hidden, write, seen: int, mask):
        batch, width = hidden.shape[0], hidden.shape[-1]
        n_head, head_dim = self.n_head, self.head_dim
        x = F.layer_norm(hidden, *b.ln_1)
        q, k, v = torch.addmm(b.attn_bias, x.view(-1, width), b.attn_weight).view(batch, 1, -1).split(b.split_size, 2)
        q = q.view(batch, 1, n_head, head_dim).transpose(1, 2)  # (B, nh, 1, hs)
        if isinstance(write, int):
            self.keys[i, :, :, write] = k.view(batch, n_head, head_dim)
            self.values[i, :, :, write] = v.view(batch, n_head, head_dim)
        else:  # each row its own slot
            self.keys[i][self.rows, :, write] = k.view(batch, n_head, head_dim)
            self.values[i][self.rows, :, write] = v.view(batch, n_head, head_dim)
        keys, values = self.keys[i, :, :, :seen], self.values[i, :, :, :seen]
        a = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=b.scaling)
        a = a.transpose(1, 2).reshape(batch, 1, width)
        hidden = torch.addmm(b.attn_proj_bias, a.view(-1, width), b.attn_proj_weight).view(batch, 1, width) + hidden
        x = F.layer_norm(hidden, *b.ln_2)
        x = b.act(torch.addmm(b.fc_bias, x.view(-1, width), b.fc_weight))
        return torch.addmm(b.mlp_proj_bias, x, b.mlp_proj_weight).view(batch, 1, width) + hidden
