"""Continue music: bar-accurate prompts and endings, sampled under the notewise constraints.

:func:`continue_piece` is the Python API behind ``maia generate``, ``maia lacrimosa`` and
``pipeline("music-generation")``; :func:`continue_ids` continues token ids exactly as written
(``pipeline("text-generation")``). Both sample through
:func:`~maia_hf.generation.decoding.sample_with_sliding_window`, so any length works, and both can
return the best of ``candidates`` continuations sampled as one batch (:mod:`~maia_hf.generation.ranking`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..codec import NoteArray, Piece
from ..errors import MaiaInputError
from .settings import check_generation_settings

__all__ = [
    "DEFAULT_MAX_NOTE_QUARTERS",
    "Continuation",
    "continue_ids",
    "continue_piece",
    "max_note_steps",
    "prompt_end",
    "prompt_ids",
]

# Longest note a model may hold unless told otherwise, in quarter notes: a note whose onset has slid
# out of the model's window could otherwise sound to the end of the piece.
DEFAULT_MAX_NOTE_QUARTERS = 12.0
# Token budget of a continuation given in bars, per bar.
TOKENS_PER_BAR = 160


@dataclass
class Continuation:
    """One generated continuation.

    Attributes:
        piece (`Piece`): prompt and continuation as one piece (the prompt's tempo and time signature).
        continuation (`Piece`): the continuation alone, its times counted from the start of the piece.
        prompt_end (`int`): step where the continuation starts.
        words (`str`): the continuation's notewise words.
        interventions, steps (`int`): how often the constraints changed the model's first choice, out of
            how many steps.
        seconds (`float`): generation wall time; tokens (`int`): new tokens.
        stats (`dict`): the decoder's repairs (``ignored_note_offs``, ``closed_at_end``, ``restruck``).
        ids (`list[int]`): new token ids up to ``<end>``, pads included.
        score (`float`): mean log-probability per new token (nats) under the unconstrained model (the raw
            logits, before the constraints and the warpers), over the tokens up to and including ``<end>``.
        candidate_scores (`list[float]`): the score of every candidate sampled with it (``candidates=N``),
            in sampling order; chosen (`int`): the index of this one among them (the highest score).
        grid_steps (`int`, *optional*): the onset grid the continuation kept (``grid=``), None if free;
            key_guidance (`float`): the key guidance's strength (0: none).
        interrupted (`bool`): sampling was stopped by Ctrl-C (``keep_interrupted=True``): the continuation is
            what was sampled until then, its sounding notes closed at its last step.

    Example:

    ```python
    >>> from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaTokenizer
    >>> from maia_hf.generation import continue_piece, read_prompt
    >>> tokenizer = MaiaTokenizer()
    >>> config = MaiaConfig(vocab_size=len(tokenizer), n_layer=1, n_head=2, n_embd=16, n_inner=32, n_positions=32)
    >>> model = MaiaForCausalLM(config).eval()  # random weights; 32 positions: the window slides
    >>> (result,) = continue_piece(model, tokenizer, read_prompt("p60 wait12 endp60"), bars=2, seed=0, progress=False)
    >>> result.prompt_end, int(result.piece.notes.end.max()) <= 48 + 2 * 48, result.stats["closed_at_end"]
    (48, True, 0)
    >>> (best,) = continue_piece(model, tokenizer, None, max_new_tokens=20, candidates=3, seed=0, progress=False)
    >>> len(best.candidate_scores), best.score == max(best.candidate_scores) == best.candidate_scores[best.chosen]
    (3, True)

    ```
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
    ids: list[int] = field(default_factory=list)
    score: float = 0.0
    candidate_scores: list[float] = field(default_factory=list)
    chosen: int = 0
    grid_steps: int | None = None
    key_guidance: float = 0.0
    interrupted: bool = False

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def prompt_ids(tokenizer, piece: Piece | None, composer: str | None, end_step: int | None = None) -> list[int]:
    """``<start> <composer:..>`` and the prompt's words, with waits up to ``end_step`` (a bar line).

    Example:

    ```python
    >>> from maia_hf import MaiaTokenizer
    >>> from maia_hf.codec import NoteArray, Piece
    >>> from maia_hf.generation import prompt_ids
    >>> tokenizer = MaiaTokenizer()
    >>> piece = Piece(NoteArray.from_lists([60], [0], [30]))
    >>> tokenizer.convert_ids_to_tokens(prompt_ids(tokenizer, piece, "Mozart", end_step=96))
    ['<start>', '<composer:mozart>', 'p60', 'wait30', 'endp60', 'wait48', 'wait18']

    ```
    """
    ids = [tokenizer.bos_token_id, tokenizer.composer_token_id(composer)]
    last = 0
    if piece is not None and len(piece.notes):
        ids += tokenizer.notes_to_ids(piece.notes)
        last = int(piece.notes.end.max())
    if end_step is not None and end_step > last:
        max_wait = tokenizer.layout.max_wait
        full, rest = divmod(end_step - last, max_wait)
        ids += tokenizer.convert_tokens_to_ids([f"wait{max_wait}"] * full + ([f"wait{rest}"] if rest else []))
    return ids


def prompt_end(piece: Piece | None, steps_per_quarter: int = 12) -> int:
    """The bar line at or after the prompt's last note (0 for no prompt).

    >>> from maia_hf.codec import NoteArray, Piece
    >>> prompt_end(Piece(NoteArray.from_lists([60], [0], [30]))), prompt_end(None)
    (48, 0)
    """
    if piece is None or len(piece.notes) == 0:
        return 0
    last = int(piece.notes.end.max())
    lines = piece.bar_lines(steps_per_quarter, until=last + 10 * 4 * steps_per_quarter)
    return next(b for b in lines if b >= last)


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


def _bars_end_step(prompt: Piece, start: int, bars: int | None, spq: int) -> int | None:
    """The bar line ``bars`` bars after ``start`` (None without ``bars``)."""
    if bars is None:
        return None
    if bars < 1:
        raise MaiaInputError(f"the number of bars must be >= 1, got {bars}")
    lines = prompt.bar_lines(spq, until=start + bars * 16 * spq + 1)
    return [b for b in lines if b > start][bars - 1]


def _sample_sequences(model, tokenizer, history, budget, n, *, seed, constrained, make_constraints, settings,
                      candidates=1, make_streamer=None, logits_processor=None,
                      keep_interrupted=False) -> tuple[list, bool]:  # fmt: skip
    """``n`` sequences, each the best of ``candidates`` sampled as one batch (a ``RankedSample`` each), and
    whether Ctrl-C stopped the last of them (``keep_interrupted``; else the interruption goes on up)."""
    # torch comes in here, not at the top: `maia --help` reads DEFAULT_MAX_NOTE_QUARTERS from this module.
    import time

    import torch

    from .decoding import GenerationInterrupted
    from .ranking import sample_best_of

    settings = {**settings, "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
                "layout": tokenizer.layout}  # the window re-strikes the notes sounding at its cut  # fmt: skip
    if seed is not None:
        torch.manual_seed(seed)
    results = []
    for index in range(n):
        constraints = make_constraints() if constrained else None
        streamer = make_streamer(index) if make_streamer is not None else None
        began = time.perf_counter()
        try:
            results.append(
                sample_best_of(model, history, budget, candidates, constraints, streamer, logits_processor, **settings)
            )
        except GenerationInterrupted as stop:
            if not keep_interrupted or stop.rows is None:
                raise
            results.append(_interrupted_sample(stop, constraints, time.perf_counter() - began))
            return results, True
        finally:
            if streamer is not None:
                streamer.end()
    return results, False


def _interrupted_sample(stop, constraints, seconds: float):
    """The ``RankedSample`` of a batch stopped by Ctrl-C: its likeliest candidate so far."""
    from .ranking import RankedSample

    scores = stop.scores or [0.0] * len(stop.rows)
    chosen = max(range(len(stop.rows)), key=scores.__getitem__)
    counted = constraints is not None and constraints.row_steps is not None
    return RankedSample(
        ids=stop.rows[chosen], candidate_scores=scores, chosen=chosen,
        interventions=int(constraints.row_interventions[chosen]) if counted else 0,
        steps=int(constraints.row_steps[chosen]) if counted else 0, seconds=seconds,
    )  # fmt: skip


def continue_ids(
    model,
    tokenizer,
    ids: list[int],
    *,
    max_new_tokens: int,
    composer: str | None = None,
    do_sample: bool = True,
    top_k: int | None = 5,
    top_p: float | None = None,
    temperature: float | None = 1.0,
    seed: int | None = None,
    num_return_sequences: int = 1,
    max_polyphony: int = 12,
    max_note_quarters: float | None = DEFAULT_MAX_NOTE_QUARTERS,
    constrained: bool = True,
    logits_processor=None,
    candidates: int = 1,
) -> list[list[int]]:
    """Continue token ids exactly as written: no re-encoding, no padding to a bar line.

    The constraints keep the words well-formed, but the budget does not end the piece: the text may stop
    with notes sounding, as a text continuation does. Ids without a composer token (after an optional
    ``<start>``) are read after ``<start> <composer:..>``.

    Args:
        model, tokenizer: as for :func:`continue_piece`.
        ids (`list[int]`): the prompt's token ids.
        max_new_tokens (`int`): most tokens to add.
        composer (`str`, *optional*): composer token put before ids without ``<start>`` (default unknown).
        logits_processor (`list[LogitsProcessor]`, *optional*): more processors, after the constraints.
        do_sample, top_k, top_p, temperature, seed, num_return_sequences, max_polyphony, max_note_quarters,
            constrained, candidates: as for :func:`continue_piece`.

    Returns:
        `list[list[int]]`: the new ids of each sequence, ``<end>`` included when it came.
    """
    from .logits_process import NotewiseConstraintProcessor

    check_generation_settings(
        max_new_tokens=max_new_tokens, top_k=top_k, top_p=top_p, temperature=temperature if do_sample else None,
        num_return_sequences=num_return_sequences, candidates=candidates, max_note_quarters=max_note_quarters,
    )  # fmt: skip
    history = [int(i) for i in ids]
    if history[:1] == [tokenizer.bos_token_id]:  # tokenizer(text) puts <start> first
        history = history[1:]
    if history[:1] and tokenizer.layout.kind(history[0]) == "composer":
        history = [tokenizer.bos_token_id, *history]
    else:
        history = [tokenizer.bos_token_id, tokenizer.composer_token_id(composer), *history]
    longest = max_note_steps(max_note_quarters, tokenizer.codec.config.steps_per_quarter)
    sampled = _sample_sequences(
        model, tokenizer, history, max_new_tokens, num_return_sequences, seed=seed, constrained=constrained,
        make_constraints=lambda: NotewiseConstraintProcessor(tokenizer, None, max_polyphony, max_note_steps=longest),
        settings={"do_sample": do_sample, "top_k": top_k, "top_p": top_p, "temperature": temperature},
        candidates=candidates, logits_processor=logits_processor,
    )  # fmt: skip
    return [s.ids for s in sampled[0]]


def continue_piece(
    model,
    tokenizer,
    prompt: Piece | None = None,
    *,
    composer: str | None = None,
    bars: int | None = None,
    max_new_tokens: int | None = None,
    do_sample: bool = True,
    top_k: int | None = 5,
    top_p: float | None = None,
    temperature: float | None = 1.0,
    seed: int | None = None,
    num_return_sequences: int = 1,
    max_polyphony: int = 12,
    max_note_quarters: float | None = DEFAULT_MAX_NOTE_QUARTERS,
    constrained: bool = True,
    progress: bool = True,
    on_note=None,
    candidates: int = 1,
    keep_interrupted: bool = False,
    grid: int | str | None = None,
    key_guidance: float = 0.0,
) -> list[Continuation]:
    """Continue a prompt (or start from nothing) with top-k sampling under the notewise constraints.

    Args:
        model: a causal LM over the tokenizer's vocabulary (`MaiaForCausalLM`, `MaiaLstmForCausalLM`).
        tokenizer (`MaiaTokenizer`)
        prompt (`Piece`, *optional*): the music to continue, already clipped (see `Piece.first_bars` and
            :func:`~maia_hf.generation.read_prompt`); None starts from ``<start> <composer:..>``.
        composer (`str`, *optional*): composer, in any spelling; defaults to the prompt's, else unknown.
        bars (`int`, *optional*): continue for this many bars after the prompt's last bar line and stop at
            that bar line. Else ``max_new_tokens`` (default 1024) bounds the length.
        max_new_tokens (`int`, *optional*): token budget (with ``bars``, defaults to 160 tokens a bar).
        do_sample (`bool`, *optional*, defaults to `True`): sample; False takes the likeliest allowed word.
        top_k (`int`, *optional*, defaults to 5), top_p, temperature: sampling settings.
        seed (`int`, *optional*): makes the output reproducible.
        num_return_sequences (`int`, *optional*, defaults to 1)
        max_polyphony (`int`, *optional*, defaults to 12): most notes sounding at once.
        max_note_quarters (`float`, *optional*, defaults to 12): longest note, in quarter notes (three bars
            of 4/4, two of 12/8; in piano-midi.de about 1 note in 20,000 is longer); None lets notes sound
            for as long as the model holds them.
        constrained (`bool`, *optional*, defaults to `True`): apply :class:`NotewiseConstraintProcessor`.
        progress (`bool`, *optional*, defaults to `True`): show a progress bar (bars written by the first
            candidate).
        on_note (*optional*): callback ``(pitch, start, end)`` for each note of the first sequence as it is
            completed; only with ``candidates=1`` (which candidate is kept is known only at the end).
        candidates (`int`, *optional*, defaults to 1): sample this many continuations as one batch for each
            returned sequence and keep the likeliest (the highest :attr:`Continuation.score`); all their
            scores are in :attr:`Continuation.candidate_scores`.
        keep_interrupted (`bool`, *optional*, defaults to `False`): on Ctrl-C, return what was sampled so far
            (the last continuation flagged :attr:`Continuation.interrupted`, none after it) instead of raising
            `KeyboardInterrupt` (`GenerationInterrupted`).
        grid (`int` or `str`, *optional*): keep every new onset on a grid: ``"auto"`` the one the prompt keeps
            (:func:`~maia_hf.generation.prompt_grid`; free if it keeps none), a number of steps (6: eighth
            notes at 12 steps a quarter), None or ``"off"`` free. Needs ``constrained``.
        key_guidance (`float`, *optional*, defaults to 0): lean toward the prompt's pitch classes with this
            strength (:class:`~maia_hf.generation.PitchClassGuidance`; 0 off, 1 model and prompt alike).
            :attr:`Continuation.score` stays the unguided model's.

    Returns:
        `list[Continuation]`, one per returned sequence.
    """
    from .guidance import resolve_guidance
    from .logits_process import NotewiseConstraintProcessor
    from .pitch_guidance import PitchClassGuidance
    from .streamers import NoteStreamer

    check_generation_settings(
        bars=bars, max_new_tokens=max_new_tokens, top_k=top_k, top_p=top_p,
        temperature=temperature if do_sample else None, num_return_sequences=num_return_sequences,
        candidates=candidates, max_note_quarters=max_note_quarters, grid=grid, key_guidance=key_guidance,
    )  # fmt: skip
    spq = tokenizer.codec.config.steps_per_quarter
    prompt = prompt if prompt is not None else Piece(NoteArray.empty())
    start = prompt_end(prompt, spq)
    end_step = _bars_end_step(prompt, start, bars, spq)
    budget = max_new_tokens or (TOKENS_PER_BAR * bars if bars else 1024)
    longest = max_note_steps(max_note_quarters, spq)
    history = prompt_ids(tokenizer, prompt, composer or prompt.composer, end_step=start)
    bar_lines = prompt.bar_lines(spq, until=(end_step or start) + 1)
    grid_steps, profile = resolve_guidance(prompt, grid, key_guidance, spq)
    guidance = [PitchClassGuidance(tokenizer, profile, key_guidance)] if profile is not None else None
    sampled, interrupted = _sample_sequences(
        model, tokenizer, history, budget, num_return_sequences, seed=seed, constrained=constrained,
        make_constraints=lambda: NotewiseConstraintProcessor(
            tokenizer, budget, max_polyphony, end_step, longest, grid_steps=grid_steps, grid_origin=start
        ),
        settings={"do_sample": do_sample, "top_k": top_k, "top_p": top_p, "temperature": temperature},
        candidates=candidates, keep_interrupted=keep_interrupted, logits_processor=guidance,
        make_streamer=lambda index: NoteStreamer(
            tokenizer, on_note=on_note if index == 0 and candidates == 1 else None, bar_lines=bar_lines,
            start_step=start, progress=progress,
        ),
    )  # fmt: skip
    continuations = [_to_continuation(tokenizer, prompt, start, s) for s in sampled]
    for c in continuations:
        c.grid_steps = grid_steps if constrained else None
        c.key_guidance = float(key_guidance or 0.0)
    continuations[-1].interrupted = interrupted
    return continuations


def _to_continuation(tokenizer, prompt: Piece, start: int, sampled) -> Continuation:
    """The new ids as notes after ``start``, alone and merged with the prompt."""
    new_ids = sampled.ids
    if tokenizer.eos_token_id in new_ids:
        new_ids = new_ids[: new_ids.index(tokenizer.eos_token_id)]
    raw_ids = list(new_ids)
    new_ids = [i for i in new_ids if i != tokenizer.pad_token_id]
    decoded = tokenizer.codec.decode(tokenizer.layout.codec_indices(new_ids))
    notes = decoded.notes
    shifted = NoteArray(notes.pitch, notes.start + start, notes.end + start, notes.velocity)
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
        interventions=sampled.interventions,
        steps=sampled.steps,
        seconds=sampled.seconds,
        tokens=len(new_ids),
        stats=stats,
        ids=raw_ids,
        score=sampled.score,
        candidate_scores=sampled.candidate_scores,
        chosen=sampled.chosen,
    )
