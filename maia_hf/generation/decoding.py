"""The decoding path: the sampling loop, the lean GPT-2 decoder behind it, and the sliding window.

:func:`sample` is the loop of ``generate(do_sample=True)`` without its per-step overhead;
:class:`LeanGPT2Decoder` runs a `MaiaForCausalLM`'s own operations on preallocated keys and values;
:func:`sample_with_sliding_window` lets a model with few positions write a piece of any length. Every
generation in maia (``continue_piece``, the CLI, the pipelines) goes through them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from transformers import LogitsProcessor
from transformers.generation.streamers import BaseStreamer

from .logits_process import sampling_warpers

__all__ = ["GenerationInterrupted", "LeanGPT2Decoder", "sample", "sample_with_sliding_window"]


class GenerationInterrupted(KeyboardInterrupt):
    """Ctrl-C during sampling, carrying what was sampled before it.

    A `KeyboardInterrupt`, so a caller that does not look for it stops as on any Ctrl-C; one that does (the
    ``maia generate`` job) keeps the tokens. :func:`sample` raises it with ``ids``,
    :func:`sample_with_sliding_window` with ``rows`` and ``scores``.

    Attributes:
        ids (`torch.LongTensor` of shape ``(batch, length)``, *optional*): the prompt and the tokens drawn.
        rows (`list[list[int]]`, *optional*): each sequence's new ids so far.
        scores (`list[float]`, *optional*): each sequence's mean log-probability so far (with a scorer).
    """

    def __init__(self, ids=None, rows=None, scores=None):
        super().__init__("interrupted during sampling")
        self.ids, self.rows, self.scores = ids, rows, scores


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
    same operations, in the same order and with the same kernels (``addmm``, ``layer_norm``, SDPA with the
    pattern's boolean mask for the sparse implementations), on preallocated key/value buffers instead of
    a growing cache. The logits are the model's own (tested to the bit); what goes is the Python work
    around them, about half the time of a decoding step for a 5 M-parameter model on a CPU.

    Args:
        model (`MaiaForCausalLM`): in eval mode, see :meth:`applies`.
        batch (`int`): sequences decoded together.
        total_length (`int`): prompt and new tokens, at most the model's ``n_positions``.

    Example:

    ```python
    >>> import torch
    >>> from maia_hf import MaiaConfig, MaiaForCausalLM
    >>> from maia_hf.generation.decoding import LeanGPT2Decoder
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
        first = next(model.parameters())
        shape = (len(self.transformer.h), batch, self.n_head, total_length, self.head_dim)  # (L, B, nh, T, hs)
        self.keys = torch.empty(shape, dtype=first.dtype, device=first.device)
        self.values = torch.empty_like(self.keys)
        self.length = 0
        self.blocks = [_BlockTensors.of(block) for block in self.transformer.h]
        # The pattern's (heads or 1, query, key) mask over every position this decoder will reach.
        self.pattern_rows = None
        if self.pattern is not None:
            heads = torch.arange(self.n_head if self.pattern.varies_by_head else 1, device=first.device)
            positions = torch.arange(total_length, device=first.device)
            rows = self.pattern.allows(heads[:, None, None], positions[:, None], positions[None, :])
            self.pattern_rows = torch.broadcast_to(rows, (len(heads), total_length, total_length))

    def prefill(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """Run the prompt (B, T) through the model; keep its keys and values; return the last logits (B, V)."""
        out = self.model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
        n = input_ids.shape[1]
        for i, layer in enumerate(out.cache.layers):
            self.keys[i, :, :, :n] = layer.keys
            self.values[i, :, :, :n] = layer.values
        self.length = n
        return out.logits[:, -1]

    def step(self, tokens: torch.LongTensor) -> torch.Tensor:
        """Logits (B, V) after appending ``tokens`` (B,), one per sequence.

        The operations of GPT-2's blocks as transformers runs them (``Conv1D`` is ``addmm`` on the 2D
        view; ``LayerNorm`` is ``layer_norm``), minus the module calls around them.
        """
        t = self.transformer
        position = self.length
        hidden = t.wte(tokens[:, None]) + t.wpe.weight[position]  # (B, 1, C)
        batch, width = hidden.shape[0], hidden.shape[-1]
        mask = None
        if self.pattern_rows is not None:
            mask = self.pattern_rows[None, :, position : position + 1, : position + 1].expand(batch, -1, -1, -1)
        for i, block in enumerate(self.blocks):
            hidden = self._block(i, block, hidden, position, mask, batch, width)
        self.length += 1
        return self.model.lm_head(t.ln_f(hidden))[:, -1]

    def _block(self, i: int, b: _BlockTensors, hidden, position: int, mask, batch: int, width: int):
        n_head, head_dim = self.n_head, self.head_dim
        x = F.layer_norm(hidden, *b.ln_1)
        q, k, v = torch.addmm(b.attn_bias, x.view(-1, width), b.attn_weight).view(batch, 1, -1).split(b.split_size, 2)
        q = q.view(batch, 1, n_head, head_dim).transpose(1, 2)  # (B, nh, 1, hs)
        self.keys[i, :, :, position] = k.view(batch, n_head, head_dim)
        self.values[i, :, :, position] = v.view(batch, n_head, head_dim)
        keys, values = self.keys[i, :, :, : position + 1], self.values[i, :, :, : position + 1]
        a = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=b.scaling)
        a = a.transpose(1, 2).reshape(batch, 1, width)
        hidden = torch.addmm(b.attn_proj_bias, a.view(-1, width), b.attn_proj_weight).view(batch, 1, width) + hidden
        x = F.layer_norm(hidden, *b.ln_2)
        x = b.act(torch.addmm(b.fc_bias, x.view(-1, width), b.fc_weight))
        return torch.addmm(b.mlp_proj_bias, x, b.mlp_proj_weight).view(batch, 1, width) + hidden


@torch.inference_mode()
def sample(
    model,
    input_ids: torch.LongTensor,
    max_new_tokens: int,
    logits_processor: list[LogitsProcessor] | None = None,
    streamer: BaseStreamer | None = None,
    *,
    top_k: int | None = 5,
    top_p: float | None = None,
    temperature: float | None = 1.0,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    do_sample: bool = True,
    finished: torch.BoolTensor | None = None,
) -> torch.LongTensor:
    """Sample with the model's cache: the loop of ``generate(do_sample=True)``, without its per-step overhead.

    Processors run first, then temperature, top-k and top-p, as in ``generate()``; a token is drawn with
    ``torch.multinomial`` from the same distribution, so for one sequence and the same seed the output is
    ``generate()``'s token for token (tested). Decoding a 5 M-parameter model is dominated by per-step
    Python work: this loop does less of it than ``generate()``, and for a `MaiaForCausalLM` (dense or
    sparse attention) it decodes with :class:`LeanGPT2Decoder` (docs/benchmarks/generation.md). Other
    models must take and return ``cache`` (`MaiaLstmForCausalLM` does).

    Args:
        model: a causal LM; input_ids (`torch.LongTensor` of shape ``(batch, prompt)``).
        max_new_tokens (`int`): most tokens to add.
        logits_processor (`list[LogitsProcessor]`, *optional*): run in order before the warpers.
        streamer (`BaseStreamer`, *optional*): gets the prompt (B, T), then the new tokens (B,) of each step.
        top_k, top_p, temperature: the warpers (``top_k=0`` and ``top_p=None`` turn them off).
        eos_token_id, pad_token_id (`int`, *optional*): a sequence stops after ``eos_token_id``.
        do_sample (`bool`, *optional*, defaults to `True`): draw from the distribution; False takes the argmax.
        finished (`torch.BoolTensor` of shape ``(batch,)``, *optional*): sequences that ended before this
            call (an earlier chunk of a sliding window): they get pads from the first step.

    Returns:
        `torch.LongTensor` of shape ``(batch, prompt + new)``; a sequence stops after ``eos_token_id`` and is
        padded with ``pad_token_id`` while others go on.
    """
    # Called one by one: LogitsProcessorList inspects every processor's signature at every step.
    processors = list(logits_processor or []) + sampling_warpers(temperature, top_k, top_p)
    batch, length = input_ids.shape
    ids = torch.full((batch, length + max_new_tokens), pad_token_id or 0, dtype=torch.long, device=input_ids.device)
    ids[:, :length] = input_ids
    if streamer is not None:
        streamer.put(input_ids.cpu())
    unfinished = torch.ones(batch, dtype=torch.bool, device=input_ids.device)
    if finished is not None:
        unfinished &= ~finished.to(input_ids.device)
    total = length + max_new_tokens
    lean = LeanGPT2Decoder(model, batch, total) if LeanGPT2Decoder.applies(model, total) else None
    cache, step_input = None, input_ids
    try:
        for _ in range(max_new_tokens):
            if lean is not None:
                logits = lean.prefill(step_input) if lean.length == 0 else lean.step(step_input[:, 0])
            else:
                out = model(input_ids=step_input, cache=cache, use_cache=True, logits_to_keep=1)
                cache, logits = out.cache, out.logits[:, -1]
            scores = logits.float()
            for processor in processors:
                scores = processor(ids[:, :length], scores)
            if do_sample:
                token = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
            else:
                token = scores.argmax(dim=-1)
            if eos_token_id is not None:
                token = torch.where(unfinished, token, pad_token_id or 0)
                unfinished &= token != eos_token_id
            ids[:, length] = token
            length += 1
            if streamer is not None:
                streamer.put(token.cpu())
            if not bool(unfinished.any()):
                break
            step_input = token[:, None]
    except KeyboardInterrupt as exc:  # the tokens drawn so far go up with the interruption
        raise GenerationInterrupted(ids=ids[:, :length]) from exc
    return ids[:, :length]


def sample_with_sliding_window(
    model,
    history: list[int],
    max_new_tokens: int,
    constraints=None,
    streamer: BaseStreamer | None = None,
    logits_processor: list[LogitsProcessor] | None = None,
    *,
    num_sequences: int = 1,
    scorer=None,
    **settings,
) -> list[list[int]]:
    """Sample ``max_new_tokens`` tokens after ``history`` (or until ``<end>``), for any length of piece.

    A model with ``n_positions`` sees ``<start> <composer>`` (the first two ids of ``history``) and the
    most recent tokens; each chunk keeps half the window as context and fills the other half. The
    ``num_sequences`` sequences are decoded as one batch: the window moves all of them together, and one
    that has written ``<end>`` gets pads while the others go on. The constraint processor and the scorer
    follow the whole piece, not the window.

    Args:
        model: a causal LM (with ``config.n_positions``, or none for a model without a length limit).
        history (`list[int]`): ``<start> <composer:..>`` and the piece so far, the same for every sequence.
        max_new_tokens (`int`): the budget.
        constraints (`NotewiseConstraintProcessor`, *optional*): primed with ``history`` here.
        streamer (*optional*): a :class:`~maia_hf.generation.NoteStreamer` (told where each chunk begins);
            it gets every sequence's tokens and follows the first.
        logits_processor (`list[LogitsProcessor]`, *optional*): more processors, run after the constraints
            on each chunk's window.
        num_sequences (`int`, *optional*, defaults to 1): sequences sampled together.
        scorer (`SequenceLogProbability`, *optional*): run first, on the raw logits, and told each chunk's
            last token.
        **settings: the keywords of :func:`sample` (``top_k``, ``eos_token_id``...).

    Returns:
        `list[list[int]]`: the new ids of each sequence, up to and including ``<end>`` when it came.

    Raises:
        GenerationInterrupted: Ctrl-C; its ``rows`` are the new ids sampled until then (and ``scores`` the
            scorer's figures over them, its last token possibly not yet counted).
    """
    window = getattr(model.config, "n_positions", None) or 10**9
    device = model.device
    head = torch.tensor([history[:2]] * num_sequences, device=device)  # (B, 2)
    body = torch.tensor([history[2:]] * num_sequences, dtype=torch.long, device=device)  # (B, T)
    processors = [p for p in (scorer, constraints) if p is not None] + list(logits_processor or [])
    if constraints is not None:
        constraints.prime(torch.cat([head, body], dim=1))
    eos = settings.get("eos_token_id")
    finished = torch.zeros(num_sequences, dtype=torch.bool, device=device)
    new = body[:, :0]
    try:
        while new.shape[1] < max_new_tokens:
            context, chunk = _chunk_context(head, body, window, max_new_tokens - new.shape[1])
            if constraints is not None:
                constraints.start_chunk(context.shape[1], new.shape[1])
            if hasattr(streamer, "begin_chunk"):
                streamer.begin_chunk()
            try:
                out = sample(model, context, chunk, processors, streamer, finished=finished, **settings)
            except GenerationInterrupted as stop:
                if stop.ids is not None:  # this chunk's tokens so far
                    new = torch.cat([new, stop.ids[:, context.shape[1] :]], dim=1)
                raise
            for follower in (scorer, constraints):
                if follower is not None:
                    follower.follow(out)
            produced = out[:, context.shape[1] :]
            new, body = torch.cat([new, produced], dim=1), torch.cat([body, produced], dim=1)
            if eos is not None:
                finished |= (produced == eos).any(dim=1)
            if bool(finished.all()) or produced.shape[1] == 0:
                break
    except KeyboardInterrupt as exc:
        scores = (
            scorer.mean_log_probability.tolist() if scorer is not None and scorer.token_counts is not None else None
        )
        raise GenerationInterrupted(rows=[_through_end(row, eos) for row in new.tolist()], scores=scores) from exc
    return [_through_end(row, eos) for row in new.tolist()]


def _chunk_context(head, body, window: int, left: int) -> tuple[torch.Tensor, int]:
    """The next chunk's context (B, T) and length: the head and as much of the piece as leaves room to write."""
    room = window - head.shape[1]
    chunk = min(left, max(room // 2, 1) if body.shape[1] + left > room else room)
    kept = min(room - chunk, body.shape[1])
    return torch.cat([head, body[:, body.shape[1] - kept :]], dim=1), chunk


def _through_end(ids: list[int], eos: int | None) -> list[int]:
    """``ids`` up to and including the first ``eos`` (the pads after it dropped)."""
    return ids[: ids.index(eos) + 1] if eos is not None and eos in ids else ids
