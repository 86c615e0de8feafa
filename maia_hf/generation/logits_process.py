"""Logits processors for notewise text: the constraints that keep sampled music well-formed, the score of
what was sampled, and the warpers.

:class:`NotewiseConstraintProcessor` is a `LogitsProcessor` like transformers' own: it works in
``generate(logits_processor=[...])`` as well as in :func:`~maia_hf.generation.sample`. Each rule of the
notewise grammar is one method that returns the ids it allows; ``__call__`` combines them.
:class:`SequenceLogProbability` changes nothing: it adds up the log-probability the model gave each drawn token.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from transformers import LogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from ..errors import MaiaInputError

__all__ = ["NotewiseConstraintProcessor", "SequenceLogProbability", "sampling_warpers"]

# A clock that no end step limits: larger than any wait the vocabulary can write.
_NO_END = 10**9


class _StepState(NamedTuple):
    """What every rule needs to know about the step being sampled, per sequence."""

    n_sounding: torch.LongTensor  # (B,) notes sounding now
    after_last: torch.BoolTensor  # (B, P) pitches above this step's last note word
    remaining: torch.LongTensor  # (B,) steps left to the end step
    closing: torch.BoolTensor  # (B,) the budget leaves room only to close the sounding notes
    finishing: torch.BoolTensor  # (B,) closing, or at the end step: close notes, then <end>


class NotewiseConstraintProcessor(LogitsProcessor):
    """Mask the logits so that every sampled continuation is well-formed notewise text.

    No ``endp`` for a silent pitch (nor in the step its note began), no ``p`` for a sounding pitch, at
    most ``max_polyphony`` notes at once, every note closed before ``<end>``, the words of a time step in
    canonical order (offs then ons, each ascending), and (with ``end_step``) time that stops exactly at a
    bar line. Used directly in ``generate(logits_processor=[...])`` it reads the prompt from the first
    call's ``input_ids``; :func:`~maia_hf.generation.sample_with_sliding_window` drives it over a sliding
    window with :meth:`prime` and :meth:`start_chunk`.

    Args:
        tokenizer (`MaiaTokenizer`): gives the vocabulary layout (``tokenizer.layout``).
        max_new_tokens (`int`, *optional*): the budget; the processor closes every note and writes ``<end>``
            within it. None sets no budget (the text may stop with notes sounding).
        max_polyphony (`int`, *optional*, defaults to 12): most notes sounding at once.
        end_step (`int`, *optional*): stop time exactly here (a bar line): no wait may pass it, and once
            there only note-offs and then ``<end>`` are allowed.
        max_note_steps (`int`, *optional*): longest a note may sound, in steps. No wait may carry a note
            past it, and a note that has reached it is closed before anything else is written (at most
            one step later where this step's order of offs and ons no longer lets it close). Without it a
            model whose window has lost a note's onset can hold that note for many bars.
        grid_steps (`int`, *optional*): keep every onset on this grid (steps, counted from ``grid_origin``):
            a wait may only end on a grid line, so notes start on it too. Where no wait can reach the next
            line (the end step or the longest-note limit comes first) any allowed wait may be written, and
            the next wait returns to the grid. :func:`~maia_hf.generation.guidance.prompt_grid` finds the
            grid a prompt keeps.
        grid_origin (`int`, *optional*, defaults to 0): a step on the grid (the continuation's first bar line).
        leading_rest (`bool`, *optional*, defaults to `False`): let a piece with no note yet (an empty prompt)
            begin with a rest. By default its first music word is a note: a model that has seen windows
            beginning anywhere in a piece otherwise starts from nothing with up to bars of silence.

    Attributes:
        interventions (`int`): sampling steps (summed over the batch) at which the model's most likely
            token was not allowed.
        masked_mass (`float`): probability mass removed, summed over steps and sequences.
        steps (`int`): sampling steps seen, summed over the batch.
        row_interventions, row_steps (`torch.LongTensor` of shape ``(batch,)``): the same two counts for each
            sequence. A sequence that has written ``<end>`` is no longer counted.
        out_of_budget (`bool`): the token budget ran short and forced the notes closed early.

    Example:

    ```python
    >>> import torch
    >>> from maia_hf import MaiaTokenizer
    >>> from maia_hf.generation import NotewiseConstraintProcessor
    >>> tokenizer = MaiaTokenizer()
    >>> processor = NotewiseConstraintProcessor(tokenizer, max_new_tokens=10)
    >>> prompt = torch.tensor([tokenizer.encode_text("p60 wait12")[:-1]])  # p60 still sounds
    >>> masked = processor(prompt, torch.zeros(1, len(tokenizer)))
    >>> allowed = tokenizer.convert_ids_to_tokens(torch.isfinite(masked[0]).nonzero().flatten().tolist())
    >>> "endp60" in allowed, "p60" in allowed, "endp62" in allowed, "<end>" in allowed
    (True, False, False, False)

    ```
    """

    def __init__(
        self,
        tokenizer,
        max_new_tokens: int | None = None,
        max_polyphony: int = 12,
        end_step: int | None = None,
        max_note_steps: int | None = None,
        grid_steps: int | None = None,
        grid_origin: int = 0,
        leading_rest: bool = False,
    ):
        if max_note_steps is not None and max_note_steps < 1:
            raise MaiaInputError(f"max_note_steps must be at least 1 step, got {max_note_steps}")
        bad_grid = isinstance(grid_steps, bool) or not isinstance(grid_steps, int) or grid_steps < 1
        if grid_steps is not None and bad_grid:
            raise MaiaInputError(f"grid_steps must be a whole number of steps >= 1 (or None), got {grid_steps!r}")
        self.layout = tokenizer.layout
        self.max_new_tokens = max_new_tokens
        self.max_polyphony = max_polyphony
        self.end_step = end_step
        self.max_note_steps = max_note_steps
        self.grid_steps = grid_steps
        self.grid_origin = grid_origin
        self.leading_rest = leading_rest
        self.interventions = 0
        self.masked_mass = 0.0
        self.steps = 0
        self.out_of_budget = False
        self.row_interventions = self.row_steps = None
        self._sounding = self._onset = self._now = None
        self._context = self._seen = self._generated_before = 0

    # ---- state ---------------------------------------------------------------------------

    def prime(self, history: torch.LongTensor) -> None:
        """Start from the notes of ``history`` (B, T): the prompt, or everything written so far."""
        batch, n, device = history.shape[0], self.layout.n_pitches, history.device
        self._sounding = torch.zeros(batch, n, dtype=torch.bool, device=device)
        self._onset = torch.zeros(batch, n, dtype=torch.long, device=device)
        self._now = torch.zeros(batch, dtype=torch.long, device=device)
        # Canonical order inside a time step: offs, then ons, each ascending. Phase 0: nothing yet
        # in this step, 1: offs written, 2: ons written; last_pitch: the latest of them.
        self._phase = torch.zeros(batch, dtype=torch.long, device=device)
        self._last_pitch = torch.full((batch,), -1, dtype=torch.long, device=device)
        # Length of the previous word if it was a wait: a rest is written as wait48s, then the remainder.
        self._last_wait = torch.zeros(batch, dtype=torch.long, device=device)
        self._finished = torch.zeros(batch, dtype=torch.bool, device=device)
        self._begun = torch.zeros(batch, dtype=torch.bool, device=device)  # a note has been struck
        self.row_interventions = torch.zeros(batch, dtype=torch.long, device=device)
        self.row_steps = torch.zeros(batch, dtype=torch.long, device=device)
        self._advance(history)
        self._finished[:] = False  # an <end> inside the prompt does not stop the counting

    def start_chunk(self, context_length: int, generated_before: int) -> None:
        """The next call's ``input_ids`` hold ``context_length`` tokens already folded into the state
        (a sliding window over a long piece), after ``generated_before`` new tokens."""
        self._context = self._seen = context_length
        self._generated_before = generated_before

    def follow(self, sequences: torch.LongTensor) -> None:
        """Fold the tokens of ``sequences`` that no call has seen yet (the last one of a sampling run)."""
        self._advance(sequences[:, self._seen :])
        self._seen = sequences.shape[1]

    def _advance(self, tokens: torch.LongTensor) -> None:
        """Fold tokens (B, T) into the state: clock, sounding pitches, their onsets, the step's order."""
        lay = self.layout
        rows = torch.arange(tokens.shape[0], device=tokens.device)
        for t in range(tokens.shape[1]):
            token = tokens[:, t]
            is_wait, is_on, is_off = lay.is_wait(token), lay.is_note_on(token), lay.is_note_off(token)
            wait = lay.wait_steps(token)
            self._now += wait
            self._last_wait = wait
            pitch = (lay.pitch(token) - lay.pitch_min).clamp(0, lay.n_pitches - 1)
            if is_on.any():
                self._begun |= is_on
                self._sounding[rows[is_on], pitch[is_on]] = True
                self._onset[rows[is_on], pitch[is_on]] = self._now[is_on]
            if is_off.any():
                self._sounding[rows[is_off], pitch[is_off]] = False
            self._phase = torch.where(is_wait, 0, torch.where(is_off, 1, torch.where(is_on, 2, self._phase)))
            self._last_pitch = torch.where(is_wait, -1, torch.where(is_off | is_on, pitch, self._last_pitch))
            self._finished |= token == lay.eos

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
        allowed = self._allowed(self._generated_before + length - self._context, scores.shape[-1])
        self._count(scores, allowed)
        return scores.masked_fill(~allowed, float("-inf"))

    def _allowed(self, generated: int, width: int) -> torch.BoolTensor:
        """The (B, width) mask of ids that keep each sequence well-formed, ``generated`` tokens in."""
        lay, n = self.layout, self.layout.n_pitches
        state = self._step_state(generated)
        allowed = torch.zeros(self._now.shape[0], width, dtype=torch.bool, device=self._now.device)
        can_close, overdue_now, wait_cap = self._longest_note(state, self._note_offs(state))
        allowed[:, lay.off : lay.off + n] = can_close
        may_start = ~state.finishing & ~overdue_now & (state.n_sounding < self.max_polyphony)
        allowed[:, lay.on : lay.on + n] = self._note_ons(state) & may_start[:, None]
        if lay.n_velocity:
            allowed[:, lay.velocity : lay.velocity + lay.n_velocity] = may_start[:, None]
        allowed[:, lay.wait : lay.wait + lay.max_wait] = self._waits(state, can_close, overdue_now, wait_cap)
        allowed[:, lay.eos] = self._end(state)
        # Never leave a sequence with nothing to write.
        allowed[~allowed.any(dim=1), lay.eos] = True
        return allowed

    def _step_state(self, generated: int) -> _StepState:
        n_sounding = self._sounding.sum(dim=1)
        pitches = torch.arange(self.layout.n_pitches, device=self._now.device)
        if self.max_new_tokens is None:
            closing = torch.zeros_like(n_sounding, dtype=torch.bool)
        else:
            # A new note needs its p, later its endp, maybe a wait so it can end, and room for <end>
            # after every other note has closed: stop starting notes while that no longer fits.
            closing = self.max_new_tokens - generated <= n_sounding + 3
            self.out_of_budget |= bool((closing & ~self._finished).any())
        end = _NO_END if self.end_step is None else self.end_step
        remaining = (end - self._now).clamp(min=0)
        return _StepState(
            n_sounding=n_sounding,
            after_last=pitches[None, :] > self._last_pitch[:, None],
            remaining=remaining,
            closing=closing,
            finishing=closing | (remaining == 0),
        )

    def _note_offs(self, state: _StepState) -> torch.BoolTensor:
        """Sounding pitches that began before now, before any note-on of this step, ascending."""
        n = self.layout.n_pitches
        pitches = torch.arange(n, device=self._now.device)
        can_close = self._sounding & (self._onset < self._now[:, None]) & (self._phase[:, None] <= 1)
        can_close &= (self._phase[:, None] == 0) | state.after_last
        # While finishing, only the lowest one, so the ascending order can never block the rest.
        lowest = torch.where(can_close, pitches[None, :], n).min(dim=1).values
        return torch.where(state.finishing[:, None], pitches[None, :] == lowest[:, None], can_close)

    def _longest_note(self, state: _StepState, can_close: torch.BoolTensor):
        """A note that has sounded ``max_note_steps`` closes now, before any note-on (offs ascend, so only
        pitches up to it may close first), and no wait may carry a note past the limit.

        Returns ``(can_close, overdue_now, wait_cap)``: the note-offs left, whether a note must close in
        this step (B,), and the longest wait each sequence may write (B,).
        """
        max_wait = self.layout.max_wait
        if self.max_note_steps is None:
            return can_close, torch.zeros_like(state.finishing), torch.full_like(self._now, max_wait)
        n = self.layout.n_pitches
        pitches = torch.arange(n, device=self._now.device)
        held = torch.where(self._sounding, self._now[:, None] - self._onset, 0)
        overdue = (held >= self.max_note_steps) & can_close
        overdue_now = overdue.any(dim=1) & ~state.finishing
        first_overdue = torch.where(overdue, pitches[None, :], n).min(dim=1).values
        can_close = can_close & (~overdue_now[:, None] | (pitches[None, :] <= first_overdue[:, None]))
        # A note that cannot close in this step (its turn in the order has passed) waits one step.
        wait_cap = (self.max_note_steps - held.max(dim=1).values).clamp(min=1, max=max_wait)
        return can_close, overdue_now, wait_cap

    def _note_ons(self, state: _StepState) -> torch.BoolTensor:
        """Silent pitches above this step's last note-on (whether a note may start at all is the caller's)."""
        return ~self._sounding & ((self._phase[:, None] < 2) | state.after_last)

    def _waits(self, state: _StepState, can_close, overdue_now, wait_cap) -> torch.BoolTensor:
        """Waits never past the end step nor the longest note; a rest continues only after a full wait;
        while finishing, one step and only if a sounding note cannot close yet; none before the first
        note (unless ``leading_rest``)."""
        max_wait = self.layout.max_wait
        k = torch.arange(1, max_wait + 1, device=self._now.device)[None, :]
        waits = (k <= state.remaining[:, None]) & (k <= wait_cap[:, None]) & ~overdue_now[:, None]
        if not self.leading_rest:
            waits &= self._begun[:, None]
        waits &= ((self._last_wait == 0) | (self._last_wait == max_wait))[:, None]
        if self.grid_steps is not None and self.grid_steps > 1:
            on_grid = (self._now[:, None] + k - self.grid_origin) % self.grid_steps == 0
            gridded = waits & on_grid
            waits = torch.where(gridded.any(dim=1, keepdim=True), gridded, waits)
        blocked = (state.n_sounding > 0) & ~can_close.any(dim=1)
        return waits & (~state.finishing[:, None] | (blocked[:, None] & (k == 1)))

    def _end(self, state: _StepState) -> torch.BoolTensor:
        """``<end>``: nothing sounding, and at the end step when there is one (or when out of budget)."""
        at_end = state.remaining == 0
        return (state.n_sounding == 0) & (at_end | state.closing | (self.end_step is None))

    def _count(self, scores: torch.FloatTensor, allowed: torch.BoolTensor) -> None:
        # A finished sequence only waits for the others (its tokens become pads): it is not counted.
        active = ~self._finished
        probs = scores.float().softmax(dim=-1)
        best = probs.argmax(dim=-1)
        intervened = ~allowed[torch.arange(len(best), device=best.device), best] & active
        self.row_interventions += intervened
        self.row_steps += active
        self.interventions += int(intervened.sum())
        self.masked_mass += float((probs * ~allowed)[active].sum())
        self.steps += int(active.sum())


class SequenceLogProbability(LogitsProcessor):
    """Add up the log-probability the model gave each drawn token; the scores pass through unchanged.

    Placed first in the processor list, it sees the raw logits: the score is the unconstrained model's,
    before the notewise constraints, temperature, top-k and top-p. Each call keeps the log-softmax of its
    scores; the next call's ``input_ids`` (or :meth:`follow` with the sequences, after the last step of a
    sampling run) shows which token was drawn from it. A sequence is counted up to and including its
    ``<end>``; pad tokens never count.

    Args:
        eos_token_id (`int`, *optional*): the token after which a sequence is no longer counted.
        pad_token_id (`int`, *optional*): a token that is never counted (what a finished sequence gets).

    Attributes:
        log_probability (`torch.DoubleTensor` of shape ``(batch,)``): the summed log-probabilities, in nats.
        token_counts (`torch.LongTensor` of shape ``(batch,)``): the tokens counted.

    Example:

    ```python
    >>> import torch
    >>> from maia_hf.generation import SequenceLogProbability
    >>> scorer = SequenceLogProbability(eos_token_id=3, pad_token_id=0)
    >>> logits = torch.log(torch.tensor([[0.5, 0.25, 0.125, 0.125], [0.25, 0.25, 0.25, 0.25]]))
    >>> ids = torch.tensor([[2], [2]])
    >>> _ = scorer(ids, logits)
    >>> ids = torch.cat([ids, torch.tensor([[3], [1]])], dim=1)  # row 0 drew <end> (p 1/8), row 1 p 1/4
    >>> _ = scorer(ids, logits)
    >>> scorer.follow(torch.cat([ids, torch.tensor([[0], [1]])], dim=1))  # row 0 padded, row 1 p 1/4
    >>> scorer.token_counts.tolist(), [round(x, 4) for x in scorer.mean_log_probability.tolist()]
    ([1, 2], [-2.0794, -1.3863])

    ```
    """

    def __init__(self, eos_token_id: int | None = None, pad_token_id: int | None = None):
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.log_probability = self.token_counts = None
        self._finished = self._pending = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        batch = input_ids.shape[0]
        if self.log_probability is None or self.log_probability.shape[0] != batch:
            self.reset(batch, input_ids.device)
        self.follow(input_ids)
        self._pending = scores.float().log_softmax(dim=-1)  # (B, V), read when the drawn token is known
        return scores

    def reset(self, batch: int, device=None) -> None:
        """Start counting ``batch`` new sequences."""
        self.log_probability = torch.zeros(batch, dtype=torch.float64, device=device)
        self.token_counts = torch.zeros(batch, dtype=torch.long, device=device)
        self._finished = torch.zeros(batch, dtype=torch.bool, device=device)
        self._pending = None

    def follow(self, sequences: torch.LongTensor) -> None:
        """Count the last token of ``sequences`` (B, T), drawn from the scores of the latest call, if any."""
        if self._pending is None:
            return
        token = sequences[:, -1]
        counted = ~self._finished
        if self.pad_token_id is not None:
            counted &= token != self.pad_token_id
        drawn = self._pending.gather(1, token[:, None]).squeeze(1).double()
        # Out of place: the state may have been made inside `torch.inference_mode()` (the sampling loop).
        self.log_probability = self.log_probability + torch.where(counted, drawn, 0.0)
        self.token_counts = self.token_counts + counted
        if self.eos_token_id is not None:
            self._finished = self._finished | (counted & (token == self.eos_token_id))
        self._pending = None

    @property
    def mean_log_probability(self) -> torch.DoubleTensor:
        """Mean log-probability per counted token (B,), in nats (0 for a sequence with no token yet)."""
        return self.log_probability / self.token_counts.clamp(min=1)


def sampling_warpers(temperature: float | None, top_k: int | None, top_p: float | None) -> list[LogitsProcessor]:
    """The sampling warpers in the order ``generate()`` applies them (temperature, top-k, top-p).

    Example:

    ```python
    >>> from maia_hf.generation.logits_process import sampling_warpers
    >>> [type(w).__name__ for w in sampling_warpers(0.7, 5, 0.9)]
    ['TemperatureLogitsWarper', 'TopKLogitsWarper', 'TopPLogitsWarper']
    >>> sampling_warpers(1.0, 0, None)
    []

    ```
    """
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
