"""Continue music: constrained top-k sampling, bar-accurate prompts and endings, note streaming.

The pieces:

- :class:`NotewiseConstraintProcessor`, a `LogitsProcessor` that only lets a model write well-formed
  notewise text: no ``endp`` for a silent pitch (nor in the step its note began), no ``p`` for a
  sounding pitch, at most ``max_polyphony`` notes at once, every note closed before ``<end>``, the
  words of a time step in canonical order (offs then ons, each ascending), and (with a target) time
  that stops exactly at a bar line. It counts its interventions.
- :func:`continue_piece`, the Python API behind ``maia generate`` and ``maia lacrimosa``.
- :class:`NoteStreamer`, a `generate()` streamer that hands over notes as they are completed, and shows
  progress (bars written, tokens per second).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from transformers import (
    LogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.generation.streamers import BaseStreamer

from .codec import NoteArray, Piece
from .errors import MaiaInputError

__all__ = [
    "Continuation",
    "NoteStreamer",
    "NotewiseConstraintProcessor",
    "continue_piece",
    "prompt_ids",
]


class _Layout:
    """Token-id ranges of a MaiaTokenizer's vocabulary, for vectorized masks."""

    def __init__(self, tokenizer):
        codec = tokenizer.codec
        offset = tokenizer.codec_offset
        self.n_pitches = codec.n_pitches
        self.pitch_min = codec.config.pitch_min
        self.on = offset + codec.on_offset
        self.off = offset + codec.off_offset
        self.wait = offset + codec.wait_offset
        self.max_wait = codec.config.max_wait
        self.velocity = offset + codec.velocity_offset
        self.n_velocity = codec.config.velocity_bins
        self.eos = tokenizer.eos_token_id
        self.vocab_size = len(tokenizer)


class NotewiseConstraintProcessor(LogitsProcessor):
    """Mask the logits so that every sampled continuation is well-formed notewise text.

    Used directly in ``generate(logits_processor=[...])`` it reads the prompt from the first call's
    ``input_ids``; :func:`continue_piece` drives it over a sliding window with :meth:`prime` and
    :meth:`start_chunk`.

    Args:
        tokenizer (`MaiaTokenizer`): gives the vocabulary layout.
        max_new_tokens (`int`): the budget; the processor closes every note and writes ``<end>`` within it.
        max_polyphony (`int`, *optional*, defaults to 12): most notes sounding at once.
        end_step (`int`, *optional*): stop time exactly here (a bar line): no wait may pass it, and once
            there only note-offs and then ``<end>`` are allowed.
        max_note_steps (`int`, *optional*): longest a note may sound, in steps. No wait may carry a note
            past it, and a note that has reached it is closed before anything else is written (at most
            one step later where this step's order of offs and ons no longer lets it close). Without it a
            model whose window has lost a note's onset can hold that note for many bars.

    Attributes:
        interventions (`int`): sampling steps (summed over the batch) at which the model's most likely
            token was not allowed.
        masked_mass (`float`): probability mass removed, summed over steps and sequences.
        steps (`int`): sampling steps seen, summed over the batch.
        out_of_budget (`bool`): the token budget ran short and forced the notes closed early.
    """

    def __init__(
        self, tokenizer, max_new_tokens: int, max_polyphony: int = 12, end_step=None, max_note_steps: int | None = None
    ):
        if max_note_steps is not None and max_note_steps < 1:
            raise MaiaInputError(f"max_note_steps must be at least 1 step, got {max_note_steps}")
        self.layout = _Layout(tokenizer)
        self.max_new_tokens = max_new_tokens
        self.max_polyphony = max_polyphony
        self.end_step = end_step
        self.max_note_steps = max_note_steps
        self.interventions = 0
        self.masked_mass = 0.0
        self.steps = 0
        self.out_of_budget = False  # the budget forced the notes closed (before the end step, if any)
        self._sounding = self._onset = self._now = None
        self._context = self._seen = self._generated_before = 0

    # ---- state ---------------------------------------------------------------------------

    def prime(self, history: torch.LongTensor) -> None:
        """Start from the notes of ``history`` (B, T): the prompt, or everything written so far."""
        n = self.layout.n_pitches
        batch, device = history.shape[0], history.device
        self._sounding = torch.zeros(batch, n, dtype=torch.bool, device=device)
        self._onset = torch.zeros(batch, n, dtype=torch.long, device=device)
        self._now = torch.zeros(batch, dtype=torch.long, device=device)
        # Canonical order inside a time step: offs, then ons, each ascending. Phase 0: nothing yet
        # in this step, 1: offs written, 2: ons written; last_pitch: the latest of them.
        self._phase = torch.zeros(batch, dtype=torch.long, device=device)
        self._last_pitch = torch.full((batch,), -1, dtype=torch.long, device=device)
        # Length of the previous word if it was a wait: a rest is written as wait48s, then the remainder.
        self._last_wait = torch.zeros(batch, dtype=torch.long, device=device)
        self._advance(history)

    def start_chunk(self, context_length: int, generated_before: int) -> None:
        """The next call's ``input_ids`` hold ``context_length`` tokens already folded into the state
        (a sliding window over a long piece), after ``generated_before`` new tokens."""
        self._context = self._seen = context_length
        self._generated_before = generated_before

    def follow(self, sequences: torch.LongTensor) -> None:
        """Fold the tokens of ``sequences`` that no call has seen yet (the last one of a generate() run)."""
        self._advance(sequences[:, self._seen :])
        self._seen = sequences.shape[1]

    def _advance(self, tokens: torch.LongTensor) -> None:
        """Fold tokens (B, T) into the state: clock, sounding pitches, their onsets."""
        lay = self.layout
        rows = torch.arange(tokens.shape[0], device=tokens.device)
        for t in range(tokens.shape[1]):
            token = tokens[:, t]
            is_wait = (token >= lay.wait) & (token < lay.wait + lay.max_wait)
            wait = torch.where(is_wait, token - lay.wait + 1, torch.zeros_like(token))
            self._now += wait
            self._last_wait = wait
            is_on = (token >= lay.on) & (token < lay.on + lay.n_pitches)
            is_off = (token >= lay.off) & (token < lay.off + lay.n_pitches)
            pitch = torch.where(is_on, token - lay.on, token - lay.off).clamp(0, lay.n_pitches - 1)
            if is_on.any():
                self._sounding[rows[is_on], pitch[is_on]] = True
                self._onset[rows[is_on], pitch[is_on]] = self._now[is_on]
            if is_off.any():
                self._sounding[rows[is_off], pitch[is_off]] = False
            self._phase = torch.where(is_wait, 0, torch.where(is_off, 1, torch.where(is_on, 2, self._phase)))
            self._last_pitch = torch.where(is_wait, -1, torch.where(is_off | is_on, pitch, self._last_pitch))

    @property
    def now(self) -> torch.LongTensor:
        """The clock of each sequence, in steps."""
        return self._now

    # ---- masking -------------------------------------------------------------------------

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        batch, length = input_ids.shape
        if self._sounding is None or self._sounding.shape[0] != batch:
            # Used on its own in generate(): the input is the prompt.
            self.prime(input_ids)
            self.start_chunk(length, 0)
        self._advance(input_ids[:, self._seen :])
        self._seen = length
        allowed = self._allowed(self._generated_before + length - self._context)
        self._count(scores, allowed)
        return scores.masked_fill(~allowed, float("-inf"))

    def _allowed(self, generated: int) -> torch.BoolTensor:
        lay = self.layout
        batch, n = self._sounding.shape
        device = self._sounding.device
        allowed = torch.zeros(batch, lay.vocab_size, dtype=torch.bool, device=device)
        pitches = torch.arange(n, device=device)
        n_sounding = self._sounding.sum(dim=1)
        after_last = pitches[None, :] > self._last_pitch[:, None]

        budget = self.max_new_tokens - generated  # tokens left, this one included
        # A new note needs its p, later its endp, maybe a wait so it can end, and room for <end>
        # after every other note has closed: stop starting notes while that no longer fits.
        closing = budget <= n_sounding + 3
        self.out_of_budget |= bool(closing.any())
        remaining = (
            torch.full_like(self._now, 10**9) if self.end_step is None else (self.end_step - self._now).clamp(min=0)
        )
        at_end = remaining == 0
        finishing = closing | at_end

        # Note-offs: sounding pitches that began before now, before any note-on of this step, ascending.
        can_close = self._sounding & (self._onset < self._now[:, None]) & (self._phase[:, None] <= 1)
        can_close &= (self._phase[:, None] == 0) | after_last
        # While finishing, only the lowest one, so the ascending order can never block the rest.
        lowest = torch.where(can_close, pitches[None, :], n).min(dim=1).values
        can_close = torch.where(finishing[:, None], pitches[None, :] == lowest[:, None], can_close)

        # The longest note: one that has sounded max_note_steps closes now, before any note-on (offs
        # ascend, so only pitches up to it may close first), and no wait may carry a note past the limit.
        wait_cap = torch.full_like(self._now, lay.max_wait)
        overdue_now = torch.zeros_like(finishing)
        if self.max_note_steps is not None:
            held = torch.where(self._sounding, self._now[:, None] - self._onset, 0)
            overdue = (held >= self.max_note_steps) & can_close
            overdue_now = overdue.any(dim=1) & ~finishing
            first_overdue = torch.where(overdue, pitches[None, :], n).min(dim=1).values
            can_close &= ~overdue_now[:, None] | (pitches[None, :] <= first_overdue[:, None])
            # A note that cannot close in this step (its turn in the order has passed) waits one step.
            wait_cap = (self.max_note_steps - held.max(dim=1).values).clamp(min=1, max=lay.max_wait)
        allowed[:, lay.off : lay.off + n] = can_close

        # Note-ons: silent pitches above this step's last note-on, under the polyphony cap.
        may_start = ~finishing & ~overdue_now & (n_sounding < self.max_polyphony)
        order_ok = (self._phase[:, None] < 2) | after_last
        allowed[:, lay.on : lay.on + n] = ~self._sounding & order_ok & may_start[:, None]
        if lay.n_velocity:
            allowed[:, lay.velocity : lay.velocity + lay.n_velocity] = may_start[:, None]

        # Waits: never past the end step; while finishing, one step and only if a note cannot close yet.
        k = torch.arange(1, lay.max_wait + 1, device=device)
        waits = (k[None, :] <= remaining[:, None]) & (k[None, :] <= wait_cap[:, None]) & ~overdue_now[:, None]
        waits &= ((self._last_wait == 0) | (self._last_wait == lay.max_wait))[:, None]
        blocked = (n_sounding > 0) & ~can_close.any(dim=1)
        waits &= ~finishing[:, None] | (blocked[:, None] & (k[None, :] == 1))
        allowed[:, lay.wait : lay.wait + lay.max_wait] = waits

        # <end>: nothing sounding, and at the end step when there is one (or when out of budget).
        allowed[:, lay.eos] = (n_sounding == 0) & (at_end | closing | (self.end_step is None))
        # Never leave a sequence with nothing to write.
        stuck = ~allowed.any(dim=1)
        allowed[stuck, lay.eos] = True
        return allowed

    def _count(self, scores: torch.FloatTensor, allowed: torch.BoolTensor) -> None:
        width = min(scores.shape[1], allowed.shape[1])
        probs = scores[:, :width].float().softmax(dim=-1)
        best = probs.argmax(dim=-1)
        self.interventions += int((~allowed[torch.arange(len(best)), best]).sum())
        self.masked_mass += float((probs * ~allowed[:, :width]).sum())
        self.steps += scores.shape[0]


class NoteStreamer(BaseStreamer):
    """Receive tokens from ``generate(streamer=...)`` and hand over each note when it is complete.

    Like transformers' `TextStreamer`, but for music: ``on_note(pitch, start_step, end_step)`` is called
    as soon as a note's ``endp`` arrives, and a progress line shows bars written and tokens per second.

    Args:
        tokenizer (`MaiaTokenizer`)
        on_note (*optional*): callback for each completed note; by default notes are collected in ``notes``.
        bar_lines (`list[int]`, *optional*): bar lines in steps, for the progress display.
        start_step (`int`, *optional*, defaults to 0): the clock where the continuation starts.
        progress (`bool`, *optional*, defaults to `True`): show a tqdm progress bar (bars written).
    """

    def __init__(self, tokenizer, on_note=None, bar_lines=None, start_step: int = 0, progress: bool = True):
        self.layout = _Layout(tokenizer)
        self.on_note = on_note
        self.notes: list[tuple[int, int, int]] = []
        self.bar_lines = list(bar_lines or [])
        self.now = start_step
        self.start_step = start_step
        self._open: dict[int, int] = {}
        self._skip_next = True  # generate() first puts the prompt (each chunk of a long piece)
        self.tokens = 0
        self._t0 = None
        self._bar = None
        if progress:
            from tqdm.auto import tqdm

            total = sum(1 for b in self.bar_lines if b > start_step) or None
            self._bar = tqdm(total=total, unit="bar", desc="generating", leave=False)

    def begin_chunk(self) -> None:
        """The next ``put`` is a (re-fed) prompt, not new tokens."""
        self._skip_next = True

    def put(self, value: torch.Tensor) -> None:
        if self._skip_next:
            self._skip_next = False
            self._t0 = self._t0 or time.perf_counter()
            return
        for token in value.reshape(-1).tolist():
            self._token(int(token))

    def _token(self, token: int) -> None:
        lay = self.layout
        self.tokens += 1
        if lay.wait <= token < lay.wait + lay.max_wait:
            before = self._bars_done()
            self.now += token - lay.wait + 1
            if self._bar is not None:
                self._bar.update(self._bars_done() - before)
        elif lay.on <= token < lay.on + lay.n_pitches:
            self._open[token - lay.on + lay.pitch_min] = self.now
        elif lay.off <= token < lay.off + lay.n_pitches:
            pitch = token - lay.off + lay.pitch_min
            if pitch in self._open:
                note = (pitch, self._open.pop(pitch), self.now)
                self.notes.append(note)
                if self.on_note is not None:
                    self.on_note(*note)
        if self._bar is not None and self._t0 is not None:
            rate = self.tokens / max(time.perf_counter() - self._t0, 1e-9)
            self._bar.set_postfix_str(f"{rate:.0f} tokens/s", refresh=False)

    def _bars_done(self) -> int:
        return sum(1 for b in self.bar_lines if self.start_step < b <= self.now)

    def end(self) -> None:
        if self._bar is not None:
            self._bar.close()


@dataclass
class Continuation:
    """One generated continuation.

    Attributes:
        piece: prompt and continuation as one piece (the prompt's tempo and time signature).
        continuation: the continuation alone, its times counted from the start of the piece.
        prompt_end: step where the continuation starts.
        words: the continuation's notewise words.
        interventions / steps: how often the constraints changed the model's first choice, out of how many steps.
        seconds: generation wall time; tokens: new tokens.
    """

    piece: Piece
    continuation: Piece
    prompt_end: int
    words: str
    interventions: int = 0
    steps: int = 0
    seconds: float = 0.0
    tokens: int = 0
    stats: dict = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)  # new token ids up to <end>, pads included

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def prompt_ids(tokenizer, piece: Piece | None, composer: str | None, end_step: int | None = None) -> list[int]:
    """``<start> <composer:..>`` and the prompt's words, with waits up to ``end_step`` (a bar line)."""
    ids = [tokenizer.bos_token_id, tokenizer.composer_token_id(composer)]
    if piece is None or len(piece.notes) == 0:
        last = 0
    else:
        ids += tokenizer.notes_to_ids(piece.notes)
        last = int(piece.notes.end.max())
    if end_step is not None and end_step > last:
        gap = end_step - last
        full, rest = divmod(gap, tokenizer.codec.config.max_wait)
        words = [f"wait{tokenizer.codec.config.max_wait}"] * full + ([f"wait{rest}"] if rest else [])
        ids += tokenizer.convert_tokens_to_ids(words)
    return ids


def _prompt_end(piece: Piece | None, spq: int) -> int:
    """The bar line at or after the prompt's last note (0 for no prompt)."""
    if piece is None or len(piece.notes) == 0:
        return 0
    last = int(piece.notes.end.max())
    lines = piece.bar_lines(spq, until=last + 10 * 4 * spq)
    return next(b for b in lines if b >= last)


# Longest note continue_piece lets a model hold, in quarter notes. Without a limit, a note whose onset
# has slid out of the model's window can sound for the rest of the piece (the 22-bar Lacrimosa held
# notes for up to 132 quarters); real piano music almost never holds one past 9.
DEFAULT_MAX_NOTE_QUARTERS = 12.0


def max_note_steps(quarters: float | None, steps_per_quarter: int) -> int | None:
    """The longest-note limit in steps for :class:`NotewiseConstraintProcessor` (None: no limit).

    Example:

    ```python
    >>> from maia_hf.generation import max_note_steps
    >>> max_note_steps(12, 12), max_note_steps(0.01, 12), max_note_steps(None, 12)
    (144, 1, None)

    ```
    """
    if quarters is None:
        return None
    if quarters <= 0:
        raise MaiaInputError(f"the longest note must be a positive number of quarter notes (or None), got {quarters}")
    return max(round(quarters * steps_per_quarter), 1)


def continue_piece(
    model,
    tokenizer,
    prompt: Piece | None = None,
    *,
    composer: str | None = None,
    bars: int | None = None,
    max_new_tokens: int | None = None,
    top_k: int = 5,
    top_p: float | None = None,
    temperature: float = 1.0,
    seed: int | None = None,
    num_return_sequences: int = 1,
    max_polyphony: int = 12,
    max_note_quarters: float | None = DEFAULT_MAX_NOTE_QUARTERS,
    constrained: bool = True,
    progress: bool = True,
    on_note=None,
) -> list[Continuation]:
    """Continue a prompt (or start from nothing) with top-k sampling under the notewise constraints.

    Args:
        model: a causal LM over the tokenizer's vocabulary (`MaiaForCausalLM`, `MaiaLstmForCausalLM`).
        tokenizer (`MaiaTokenizer`)
        prompt (`Piece`, *optional*): the music to continue, already clipped (see `Piece.first_bars`);
            None starts from ``<start> <composer:..>``.
        composer (`str`, *optional*): composer token; defaults to the prompt's composer, else unknown.
        bars (`int`, *optional*): continue for this many bars after the prompt's last bar line and stop at
            that bar line. Else ``max_new_tokens`` (default 1024) bounds the length.
        max_new_tokens (`int`, *optional*): token budget (with ``bars``, defaults to 160 tokens a bar).
        top_k (`int`, *optional*, defaults to 5), top_p, temperature: sampling settings.
        seed (`int`, *optional*): makes the output reproducible.
        num_return_sequences (`int`, *optional*, defaults to 1)
        max_polyphony (`int`, *optional*, defaults to 12): most notes sounding at once.
        max_note_quarters (`float`, *optional*, defaults to 12): longest note, in quarter notes (three bars
            of 4/4, two of 12/8; in piano-midi.de about 1 note in 20,000 is longer); None lets notes sound
            for as long as the model holds them.
        constrained (`bool`, *optional*, defaults to `True`): apply :class:`NotewiseConstraintProcessor`.
        on_note (*optional*): callback ``(pitch, start, end)`` for each note as it is completed (first sequence).

    Returns:
        `list[Continuation]`, one per returned sequence.
    """
    spq = tokenizer.codec.config.steps_per_quarter
    prompt = prompt if prompt is not None else Piece(NoteArray.empty())
    composer = composer or prompt.composer
    start = _prompt_end(prompt, spq)
    end_step = None
    if bars is not None:
        if bars < 1:
            raise MaiaInputError(f"the number of bars must be >= 1, got {bars}")
        lines = prompt.bar_lines(spq, until=start + bars * 16 * spq + 1)
        end_step = [b for b in lines if b > start][bars - 1]
    budget = max_new_tokens or (160 * bars if bars else 1024)
    longest = max_note_steps(max_note_quarters, spq)
    history = prompt_ids(tokenizer, prompt, composer, end_step=start)
    settings = {
        "do_sample": True, "top_k": top_k, "top_p": top_p, "temperature": temperature,
        "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
    }  # fmt: skip
    bar_lines = prompt.bar_lines(spq, until=(end_step or start) + 1)
    if seed is not None:
        torch.manual_seed(seed)
    results = []
    for index in range(num_return_sequences):
        processor = NotewiseConstraintProcessor(tokenizer, budget, max_polyphony, end_step, longest)
        streamer = NoteStreamer(
            tokenizer, on_note=on_note if index == 0 else None, bar_lines=bar_lines, start_step=start,
            progress=progress,
        )  # fmt: skip
        began = time.perf_counter()
        new_ids = _generate_long(
            model, tokenizer, history, budget, processor if constrained else None, streamer, settings
        )
        streamer.end()
        results.append(_continuation(tokenizer, prompt, start, new_ids, processor, time.perf_counter() - began))
    return results


def _generate_long(model, tokenizer, history: list[int], budget: int, processor, streamer, settings) -> list[int]:
    """Generate ``budget`` tokens (or until ``<end>``), sliding a window over models with few positions.

    A model with ``n_positions`` sees ``<start> <composer>`` and the most recent tokens; each chunk
    keeps half the window as context and fills the other half. The constraint processor follows the
    whole piece, not the window.
    """
    window = getattr(model.config, "n_positions", None) or 10**9
    head, body = history[:2], list(history[2:])
    if processor is not None:
        processor.prime(torch.tensor([history], device=model.device))
    new: list[int] = []
    while len(new) < budget:
        room = window - len(head)
        chunk = min(budget - len(new), max(room // 2, 1) if len(body) + budget - len(new) > room else room)
        context = head + body[-(room - chunk) :] if room - chunk > 0 else list(head)
        input_ids = torch.tensor([context], device=model.device)
        if processor is not None:
            processor.start_chunk(len(context), len(new))
        streamer.begin_chunk()
        out = sample(model, input_ids, chunk, [processor] if processor is not None else [], streamer, **settings)
        if processor is not None:
            processor.follow(out)
        produced = out[0, len(context) :].tolist()
        new += produced
        body += produced
        if tokenizer.eos_token_id in produced or not produced:
            break
    return new


def _warpers(temperature: float | None, top_k: int | None, top_p: float | None) -> list[LogitsProcessor]:
    """The sampling warpers in the order ``generate()`` applies them."""
    warpers: list[LogitsProcessor] = []
    if temperature is not None and temperature != 1.0:
        if temperature <= 0:
            raise MaiaInputError(f"temperature must be > 0, got {temperature}")
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_k:
        warpers.append(TopKLogitsWarper(top_k=top_k))
    if top_p is not None and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=top_p))
    return warpers


class _LeanGPT2:
    """Incremental decoding of a `MaiaForCausalLM` without transformers' per-layer machinery.

    The prompt runs through the model itself (its own forward and cache); each new token then runs the
    same operations, in the same order and with the same kernels (``addmm``, ``layer_norm``, SDPA with the
    pattern's boolean mask for the sparse implementations), on preallocated key/value buffers instead of
    a growing cache. The logits are the model's own (tested to the bit); what goes is the Python work
    around them, about half the time of a decoding step for a 5 M-parameter model on a CPU.
    """

    IMPLEMENTATIONS = ("sdpa", "maia_sparse_fixed", "maia_sparse_strided")

    @classmethod
    def applies(cls, model, total_length: int) -> bool:
        from .modeling_maia import MaiaForCausalLM

        config = getattr(model, "config", None)
        return (
            isinstance(model, MaiaForCausalLM)
            and not model.training
            and config._attn_implementation in cls.IMPLEMENTATIONS
            and not config.add_cross_attention
            and total_length <= config.n_positions
        )

    def __init__(self, model, batch: int, total_length: int):
        from .sparse_attention import SparsePattern

        config = model.config
        self.model, self.transformer = model, model.transformer
        self.n_head, self.head_dim = config.n_head, config.n_embd // config.n_head
        self.pattern = None
        if config._attn_implementation.startswith("maia_sparse_"):
            self.pattern = SparsePattern.from_config(config, config._attn_implementation[len("maia_sparse_") :])
        first = next(model.parameters())
        shape = (len(self.transformer.h), batch, self.n_head, total_length, self.head_dim)
        self.keys = torch.empty(shape, dtype=first.dtype, device=first.device)
        self.values = torch.empty_like(self.keys)
        self.length = 0
        # Per block, its tensors and functions, looked up once: the step runs them directly.
        self.layers = [
            (
                (b.ln_1.normalized_shape, b.ln_1.weight, b.ln_1.bias, b.ln_1.eps),
                b.attn.c_attn.bias,
                b.attn.c_attn.weight,
                b.attn.split_size,
                b.attn.scaling,
                b.attn.c_proj.bias,
                b.attn.c_proj.weight,
                (b.ln_2.normalized_shape, b.ln_2.weight, b.ln_2.bias, b.ln_2.eps),
                b.mlp.c_fc.bias,
                b.mlp.c_fc.weight,
                b.mlp.act,
                b.mlp.c_proj.bias,
                b.mlp.c_proj.weight,
            )  # fmt: skip
            for b in self.transformer.h
        ]
        # The pattern's (heads or 1, query, key) mask over every position this decoder will reach.
        self.pattern_rows = None
        if self.pattern is not None:
            heads = torch.arange(self.n_head if self.pattern.varies_by_head else 1, device=first.device)
            positions = torch.arange(total_length, device=first.device)
            rows = self.pattern.allows(heads[:, None, None], positions[:, None], positions[None, :])
            self.pattern_rows = torch.broadcast_to(rows, (len(heads), total_length, total_length))

    def prefill(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """Run the prompt through the model; keep its keys and values; return the last position's logits."""
        out = self.model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
        n = input_ids.shape[1]
        for i, layer in enumerate(out.cache.layers):
            self.keys[i, :, :, :n] = layer.keys
            self.values[i, :, :, :n] = layer.values
        self.length = n
        return out.logits[:, -1]

    def step(self, tokens: torch.LongTensor) -> torch.Tensor:
        """Logits after appending ``tokens`` (one per sequence).

        The operations of GPT-2's blocks as transformers runs them (``Conv1D`` is ``addmm`` on the 2D
        view; ``LayerNorm`` is ``layer_norm``), minus the module calls around them.
        """
        t = self.transformer
        position = self.length
        hidden = t.wte(tokens[:, None]) + t.wpe.weight[position]
        batch, width = hidden.shape[0], hidden.shape[-1]
        mask = None
        if self.pattern_rows is not None:
            mask = self.pattern_rows[None, :, position : position + 1, : position + 1].expand(batch, -1, -1, -1)
        n_head, head_dim = self.n_head, self.head_dim
        for i, layer in enumerate(self.layers):
            ln_1, attn_b, attn_w, split, scaling, proj_b, proj_w, ln_2, fc_b, fc_w, act, out_b, out_w = layer
            x = F.layer_norm(hidden, *ln_1)
            q, k, v = torch.addmm(attn_b, x.view(-1, width), attn_w).view(batch, 1, -1).split(split, dim=2)
            q = q.view(batch, 1, n_head, head_dim).transpose(1, 2)
            self.keys[i, :, :, position] = k.view(batch, n_head, head_dim)
            self.values[i, :, :, position] = v.view(batch, n_head, head_dim)
            keys, values = self.keys[i, :, :, : position + 1], self.values[i, :, :, : position + 1]
            a = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=scaling)
            a = a.transpose(1, 2).reshape(batch, 1, width)
            hidden = torch.addmm(proj_b, a.view(-1, width), proj_w).view(batch, 1, width) + hidden
            x = F.layer_norm(hidden, *ln_2)
            x = act(torch.addmm(fc_b, x.view(-1, width), fc_w))
            hidden = torch.addmm(out_b, x, out_w).view(batch, 1, width) + hidden
        self.length += 1
        return self.model.lm_head(t.ln_f(hidden))[:, -1]


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
) -> torch.LongTensor:
    """Sample with the model's cache: the loop of ``generate(do_sample=True)``, without its per-step overhead.

    Processors run first, then temperature, top-k and top-p, as in ``generate()``; a token is drawn with
    ``torch.multinomial`` from the same distribution, so for one sequence and the same seed the output is
    ``generate()``'s token for token (tested). Decoding a 5 M-parameter model is dominated by per-step
    Python work: this loop does less of it than ``generate()``, and for a `MaiaForCausalLM` (dense or
    sparse attention) it decodes with `_LeanGPT2`, the model's own operations on preallocated keys and
    values (docs/benchmarks/generation.md). Other models must take and return ``cache``
    (`MaiaLstmForCausalLM` does).

    Returns:
        `torch.LongTensor` of shape ``(batch, prompt + new)``; a sequence stops after ``eos_token_id`` and is
        padded with ``pad_token_id`` while others go on.
    """
    # Called one by one: LogitsProcessorList inspects every processor's signature at every step.
    processors = list(logits_processor or []) + _warpers(temperature, top_k, top_p)
    batch, length = input_ids.shape
    ids = torch.full((batch, length + max_new_tokens), pad_token_id or 0, dtype=torch.long, device=input_ids.device)
    ids[:, :length] = input_ids
    if streamer is not None:
        streamer.put(input_ids.cpu())
    unfinished = torch.ones(batch, dtype=torch.bool, device=input_ids.device)
    lean = (
        _LeanGPT2(model, batch, length + max_new_tokens) if _LeanGPT2.applies(model, length + max_new_tokens) else None
    )
    cache, step_input = None, input_ids
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
    return ids[:, :length]


def _continuation(tokenizer, prompt: Piece, start: int, new_ids: list[int], processor, seconds) -> Continuation:
    if tokenizer.eos_token_id in new_ids:
        new_ids = new_ids[: new_ids.index(tokenizer.eos_token_id)]
    raw_ids = list(new_ids)
    new_ids = [i for i in new_ids if i != tokenizer.pad_token_id]
    decoded = tokenizer.codec.decode(np.asarray(new_ids, dtype=np.int64) - tokenizer.codec_offset)
    shifted = NoteArray(
        decoded.notes.pitch, decoded.notes.start + start, decoded.notes.end + start, decoded.notes.velocity
    )
    continuation = Piece(
        shifted, prompt.tempos, prompt.time_signatures, f"{prompt.name} (continuation)", prompt.composer
    )
    merged = NoteArray.concatenate([prompt.notes, shifted]).sorted()
    piece = Piece(merged, prompt.tempos, prompt.time_signatures, prompt.name, prompt.composer)
    stats = {
        "ignored_note_offs": decoded.ignored_note_offs,
        "closed_at_end": decoded.closed_at_end,
        "restruck": decoded.restruck,
    }
    return Continuation(
        piece=piece,
        continuation=continuation,
        prompt_end=start,
        words=tokenizer.decode(new_ids, skip_special_tokens=True),
        interventions=processor.interventions,
        steps=processor.steps,
        seconds=seconds,
        tokens=len(new_ids),
        stats=stats,
        ids=raw_ids,
    )
