"""The decoding path: the sampling loop, the lean GPT-2 decoder behind it, and the sliding window.

:func:`sample` is the loop of ``generate(do_sample=True)`` without its per-step overhead;
:class:`LeanGPT2Decoder` (``lean_decoder``) runs a `MaiaForCausalLM`'s own operations on preallocated keys
and values;
:func:`sample_with_sliding_window` lets a model with few positions write a piece of any length, and
:func:`restruck_window` cuts its windows so that the model sees every note still sounding. Every
generation in maia (``continue_piece``, the CLI, the pipelines) goes through them.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor
from transformers.generation.streamers import BaseStreamer

from .lean_decoder import LeanGPT2Decoder
from .logits_process import sampling_warpers

__all__ = ["GenerationInterrupted", "LeanGPT2Decoder", "restruck_window", "sample", "sample_with_sliding_window"]


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
    attention_mask: torch.Tensor | None = None,
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
        attention_mask (`torch.Tensor` of shape ``(batch, prompt)``, *optional*): 0 on the pads of prompts
            of different lengths, padded on the left; each row is decoded as if it were alone.

    Returns:
        `torch.LongTensor` of shape ``(batch, prompt + new)``; a sequence stops after ``eos_token_id`` and is
        padded with ``pad_token_id`` while others go on (with the lean decoder it no longer costs a step,
        and ``finished`` rows are not run through the model at all).
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
    # The lean decoder computes the unfinished rows only (``live``); a finished row's scores are zeros.
    lean = live = None
    if LeanGPT2Decoder.applies(model, total) and bool(unfinished.any()):
        live = unfinished.nonzero().squeeze(1)
        lean = LeanGPT2Decoder(model, len(live), total)
    padding = {}  # for the model's own forward: the mask so far and each row's positions
    if attention_mask is not None and not bool(attention_mask.bool().all()):
        grown = torch.cat([attention_mask.long(), attention_mask.new_ones(batch, max_new_tokens).long()], dim=1)
        padding = {"mask": grown, "positions": (grown.cumsum(-1) - 1).clamp(min=0)}
    else:
        attention_mask = None
    cache, step_input = None, input_ids
    try:
        for _ in range(max_new_tokens):
            if lean is not None:
                if lean.length == 0:
                    mask = None if attention_mask is None else attention_mask[live]
                    logits = lean.prefill(step_input[live], mask)
                else:
                    logits = lean.step(step_input[live, 0])
                if len(live) < batch:
                    logits = logits.new_zeros(batch, logits.shape[-1]).index_copy_(0, live, logits)
            else:
                extra = {}
                if padding:
                    first = length - step_input.shape[1]
                    extra = {"attention_mask": padding["mask"][:, :length],
                             "position_ids": padding["positions"][:, first:length]}  # fmt: skip
                out = model(input_ids=step_input, cache=cache, use_cache=True, logits_to_keep=1, **extra)
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
            if lean is not None and not bool(unfinished[live].all()):
                kept = unfinished[live]
                lean.retain(kept)
                live = live[kept]
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
    layout=None,
    **settings,
) -> list[list[int]]:
    """Sample ``max_new_tokens`` tokens after ``history`` (or until ``<end>``), for any length of piece.

    A model with ``n_positions`` sees ``<start> <composer>`` (the first two ids of ``history``) and the
    most recent tokens; each chunk keeps half the window as context and fills the other half. With the
    vocabulary's ``layout`` the window is cut where a wait begins and the notes sounding there are struck
    again at its start (:func:`restruck_window`), so the model sees the onset of every note it may end; a
    plain cut would hide the onsets of notes held across it, and the model would not end them. The
    ``num_sequences`` sequences are decoded as one batch: the window moves all of them together (rows
    whose windows come out shorter are padded on the left and decoded as if alone), and one that has
    written ``<end>`` gets pads while the others go on. The constraint processor and the scorer follow the
    whole piece, not the window.

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
        layout (`VocabularyLayout`, *optional*): ``tokenizer.layout``; re-strike the sounding notes at each
            cut (without it the window is cut anywhere, as the training windows are).
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
            context, mask, chunk = _chunk_context(
                head, body, window, max_new_tokens - new.shape[1], layout, settings.get("pad_token_id") or 0
            )
            if constraints is not None:
                constraints.start_chunk(context.shape[1], new.shape[1])
            if hasattr(streamer, "begin_chunk"):
                streamer.begin_chunk()
            try:
                out = sample(
                    model, context, chunk, processors, streamer, finished=finished, attention_mask=mask, **settings
                )
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


def _chunk_context(head, body, window: int, left: int, layout=None, pad: int = 0):
    """The next chunk's context (B, T), its attention mask (None: no pads) and the chunk's length: the
    head and as much of the piece as leaves room to write (re-struck at the cut with ``layout``)."""
    room = window - head.shape[1]
    chunk = min(left, max(room // 2, 1) if body.shape[1] + left > room else room)
    kept = min(room - chunk, body.shape[1])
    if layout is None or kept == body.shape[1]:
        return torch.cat([head, body[:, body.shape[1] - kept :]], dim=1), None, chunk
    pairs = zip(head.tolist(), body.tolist(), strict=True)
    rows = [head_row + restruck_window(layout, row, kept) for head_row, row in pairs]
    return (*left_padded(rows, pad, body.device), chunk)


def left_padded(rows: list[list[int]], pad: int, device=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rows of ids as one (B, T) tensor padded on the left, and its attention mask (None when no row is short)."""
    width = max(len(row) for row in rows)
    context = torch.full((len(rows), width), pad, dtype=torch.long, device=device)
    mask = torch.zeros_like(context)
    for i, row in enumerate(rows):
        context[i, width - len(row) :], mask[i, width - len(row) :] = torch.tensor(row, dtype=torch.long), 1
    return context, (None if bool(mask.all()) else mask)


def restruck_window(layout, tokens: list[int], room: int) -> list[int]:
    """The end of a piece's words that fits in ``room`` tokens, cut where a wait begins, with the notes
    sounding at the cut struck again in front of it.

    ``tokens`` are a piece's words from its beginning (after ``<start> <composer>``). The cut is the
    earliest wait that leaves room for it and for the notes sounding there (the events of that time step
    all written), which come first as note-ons in ascending pitch, each after its dynamics word where the
    vocabulary has them and the dynamics change. So every note-off in the window follows its note's onset,
    and every note still sounding has an onset in view. A piece that fits is returned whole; one with no
    such wait is cut ``room`` tokens from its end.

    >>> from maia_hf import MaiaTokenizer
    >>> t = MaiaTokenizer()
    >>> words = t.convert_tokens_to_ids("p60 p64 wait12 p67 wait12 endp67 wait12 endp60 endp64".split())
    >>> t.convert_ids_to_tokens(restruck_window(t.layout, words, 6))
    ['p60', 'p64', 'wait12', 'endp60', 'endp64']
    """
    if len(tokens) <= room:
        return list(tokens)
    on, off, wait, n = layout.on, layout.off, layout.wait, layout.n_pitches
    velocity, n_velocity = layout.velocity, layout.n_velocity
    sounding: dict[int, int | None] = {}  # pitch -> the dynamics word it was struck with
    current = None
    for i, token in enumerate(tokens):
        if wait <= token < wait + layout.max_wait and len(sounding) + len(tokens) - i <= room:
            struck = _strike(sounding, on)  # the note-ons, and dynamics words where they change
            if len(struck) + len(tokens) - i <= room:
                return struck + list(tokens[i:])
        elif on <= token < on + n:
            sounding[token - on] = current
        elif off <= token < off + n:
            sounding.pop(token - off, None)
        elif n_velocity and velocity <= token < velocity + n_velocity:
            current = token
    return list(tokens[len(tokens) - room :])


def _strike(sounding: dict[int, int | None], on: int) -> list[int]:
    """Note-ons of the ``sounding`` pitches, ascending, each after its dynamics word when it changes."""
    words, current = [], None
    for pitch in sorted(sounding):
        if sounding[pitch] is not None and sounding[pitch] != current:
            current = sounding[pitch]
            words.append(current)
        words.append(on + pitch)
    return words


def _through_end(ids: list[int], eos: int | None) -> list[int]:
    """``ids`` up to and including the first ``eos`` (the pads after it dropped)."""
    return ids[: ids.index(eos) + 1] if eos is not None and eos in ids else ids
