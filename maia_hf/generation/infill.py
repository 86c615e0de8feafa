"""Fill in the middle: regenerate bars of a piece, or bridge two passages, exactly in the gap.

The model reads the piece around the gap in prefix-suffix-middle order (:mod:`maia_hf.data.fim`,
``docs/encoding.md`` §10) and writes the middle after ``<fim_middle>``. The
:class:`~maia_hf.generation.NotewiseConstraintProcessor` is told the gap's length as its ``end_step``, so
the middle's waits add up to exactly the gap, every note it starts ends inside it, and ``<end>`` comes at
the gap's end. The middle is spliced back between the untouched prefix and suffix: every note outside the
gap is kept note for note, and a note that sounded across a cut keeps its part outside the gap.

:func:`infill_piece` regenerates bars ``start_bar..end_bar`` (1-based, inclusive) of one piece;
:func:`infill_between` writes ``bars`` new bars between two passages. Both take ``candidates=N``
(best-of-N by the model's own mean log-probability, as for continuation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..codec import NoteArray, Piece
from ..errors import MaiaInputError
from .continuation import DEFAULT_MAX_NOTE_QUARTERS, TOKENS_PER_BAR, max_note_steps, prompt_end
from .settings import check_generation_settings

__all__ = ["Infill", "bar_span", "infill_between", "infill_piece"]

# Sentinels and <start> <composer> around the prefix and suffix in every window.
_FRAME = 5


@dataclass
class Infill:
    """One filled gap.

    Attributes:
        piece (`Piece`): the whole piece with the gap filled (the input's tempo and time signatures).
        middle (`Piece`): the new notes alone, in the piece's times.
        gap_start, gap_end (`int`): the gap, in steps; bars (`tuple[int, int]`): its first and last bar (1-based).
        words (`str`): the middle's notewise words.
        interventions, steps (`int`): how often the constraints changed the model's first choice, out of how many.
        seconds (`float`): wall time; tokens (`int`): new tokens; ids (`list[int]`): them, ``<end>`` included.
        score (`float`): mean log-probability per new token (nats) under the unconstrained model;
            candidate_scores (`list[float]`), chosen (`int`): every candidate's score and this one's index.
    """

    piece: Piece
    middle: Piece
    gap_start: int
    gap_end: int
    bars: tuple[int, int]
    words: str = ""
    interventions: int = 0
    steps: int = 0
    seconds: float = 0.0
    tokens: int = 0
    ids: list[int] = field(default_factory=list)
    score: float = float("nan")
    candidate_scores: list[float] = field(default_factory=list)
    chosen: int = 0


def bar_span(piece: Piece, start_bar: int, end_bar: int, steps_per_quarter: int = 12) -> tuple[int, int]:
    """The steps ``[start, end)`` of bars ``start_bar..end_bar`` (1-based, inclusive) of ``piece``.

    Raises:
        MaiaInputError: an empty range, a bar before the first, or bars past the piece's last bar.

    >>> from maia_hf.codec import NoteArray, Piece, TimeSignature
    >>> piece = Piece(NoteArray.from_lists([60], [0], [288]), time_signatures=[TimeSignature(0, 3, 4)])
    >>> bar_span(piece, 2, 3)   # bars of 36 steps
    (36, 108)
    """
    for name, value in (("first bar", start_bar), ("last bar", end_bar)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise MaiaInputError(f"the {name} must be a whole bar number, got {value!r}")
    if start_bar < 1:
        raise MaiaInputError(f"bars are counted from 1; got a gap starting at bar {start_bar}")
    if end_bar < start_bar:
        raise MaiaInputError(
            f"bars {start_bar}-{end_bar} is an empty gap; give the first bar, then the last (e.g. 9-12)"
        )
    last = prompt_end(piece, steps_per_quarter)
    lines = piece.bar_lines(steps_per_quarter, until=last)
    n_bars = max(len(lines) - 1, 0)
    if end_bar > n_bars:
        raise MaiaInputError(
            f"bars {start_bar}-{end_bar} go past the piece's last bar ({n_bars}); infill bars inside the piece, "
            "or continue it with `maia generate`"
        )
    return lines[start_bar - 1], lines[end_bar]


def _window(prefix: list[int], suffix: list[int], written: int, left: int, limit: int):
    """What fits ``limit`` positions: the prefix's end, the suffix's start, how many of the ``written`` middle
    tokens stay in view, and how many tokens to sample next."""
    if _FRAME + len(prefix) + len(suffix) + written + left <= limit:
        return prefix, suffix, written, left
    chunk = min(left, max(limit // 4, 1))
    room = max(limit - chunk - _FRAME, 0)
    kept = min(written, room // 2)
    room -= kept
    keep_suffix = min(len(suffix), max(room // 2, room - len(prefix)))
    keep_prefix = min(len(prefix), room - keep_suffix)
    kept = min(written, limit - chunk - _FRAME - keep_prefix - keep_suffix)  # the middle takes what is left
    return prefix[len(prefix) - keep_prefix :], suffix[:keep_suffix], kept, chunk


def _fim_sampler(head, prefix, suffix, layout, order: str):
    """A sampler for :func:`~maia_hf.generation.sample_best_of` that writes the middle after ``<fim_middle>``,
    the passages in ``order`` (the one the model was trained in)."""
    from ..data.fim import fim_context

    def sampler(model, history, max_new_tokens, constraints=None, streamer=None, logits_processor=None, *,
                num_sequences=1, scorer=None, **settings):  # fmt: skip
        import torch

        from .decoding import left_padded, restruck_window, sample

        limit = getattr(model.config, "n_positions", None) or 10**9
        device = model.device
        processors = [p for p in (scorer, constraints) if p is not None] + list(logits_processor or [])
        if constraints is not None:
            constraints.prime(torch.zeros(num_sequences, 0, dtype=torch.long, device=device))
        eos = settings.get("eos_token_id")
        finished = torch.zeros(num_sequences, dtype=torch.bool, device=device)
        new = torch.zeros(num_sequences, 0, dtype=torch.long, device=device)
        while new.shape[1] < max_new_tokens:
            p, s, kept, chunk = _window(prefix, suffix, new.shape[1], max_new_tokens - new.shape[1], limit)
            frame = fim_context(layout, head, p, s, order)
            # The middle's own window is cut where a wait begins, its sounding notes struck again.
            rows = [frame + restruck_window(layout, row, kept) if kept else frame for row in new.tolist()]
            context, mask = left_padded(rows, settings.get("pad_token_id") or 0, device)
            if constraints is not None:
                constraints.start_chunk(context.shape[1], new.shape[1])
            if hasattr(streamer, "begin_chunk"):
                streamer.begin_chunk()
            out = sample(
                model, context, chunk, processors, streamer, finished=finished, attention_mask=mask, **settings
            )
            for follower in (scorer, constraints):
                if follower is not None:
                    follower.follow(out)
            produced = out[:, context.shape[1] :]
            new = torch.cat([new, produced], dim=1)
            if eos is not None:
                finished |= (produced == eos).any(dim=1)
            if bool(finished.all()) or produced.shape[1] == 0:
                break
        rows = new.tolist()
        return [row[: row.index(eos) + 1] if eos is not None and eos in row else row for row in rows]

    return sampler


def _fill(model, tokenizer, piece: Piece, gap: tuple[int, int], bars: tuple[int, int], options: dict) -> list[Infill]:
    """Sample the middle of ``gap`` in ``piece`` and splice it back (the work of both public functions)."""
    import torch

    from ..data.fim import fim_order_of, fim_passages, split_at_gap
    from .guidance import resolve_guidance
    from .logits_process import NotewiseConstraintProcessor
    from .pitch_guidance import PitchClassGuidance
    from .ranking import sample_best_of
    from .streamers import NoteStreamer

    layout = tokenizer.layout
    if not layout.has_fim or model.config.vocab_size < len(tokenizer):
        raise MaiaInputError(
            "this model was not trained to infill (its vocabulary has no <fim_prefix> <fim_suffix> <fim_middle>); "
            "use a model trained with fim_rate > 0, such as the default maia-small"
        )
    spq = tokenizer.codec.config.steps_per_quarter
    start, end = gap
    parts = split_at_gap(piece.notes, start, end)
    head = [tokenizer.bos_token_id, tokenizer.composer_token_id(options["composer"] or piece.composer)]
    prefix, suffix, _ = fim_passages(tokenizer, parts)
    n_bars = bars[1] - bars[0] + 1
    budget = options["max_new_tokens"] or TOKENS_PER_BAR * n_bars
    longest = max_note_steps(options["max_note_quarters"], spq)
    # The grid and the key are the music's around the gap (the gap starts on a bar line: the grid's origin).
    around = piece.notes.take((piece.notes.start < start) | (piece.notes.start >= end))
    grid_steps, profile = resolve_guidance(Piece(around, piece.tempos, piece.time_signatures), options["grid"],
                                           options["key_guidance"], spq)  # fmt: skip
    guidance = [PitchClassGuidance(tokenizer, profile, options["key_guidance"])] if profile is not None else None
    sampler = _fim_sampler(head, prefix, suffix, layout, fim_order_of(model))
    settings = {key: options[key] for key in ("do_sample", "top_k", "top_p", "temperature")}
    settings.update(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    if options["seed"] is not None:
        torch.manual_seed(options["seed"])
    results = []
    for _ in range(options["num_return_sequences"]):
        # A gap may open on a rest (the piece around it has begun).
        constraints = NotewiseConstraintProcessor(tokenizer, budget, options["max_polyphony"], end - start, longest,
                                                  grid_steps=grid_steps, leading_rest=True)  # fmt: skip
        streamer = NoteStreamer(tokenizer, bar_lines=[b - start for b in piece.bar_lines(spq, until=end)
                                                      if start <= b <= end], progress=options["progress"])  # fmt: skip
        sampled = sample_best_of(model, head, budget, options["candidates"], constraints, streamer, guidance,
                                 sampler=sampler, **settings)  # fmt: skip
        streamer.end()
        results.append(_splice(tokenizer, piece, parts, sampled, bars))
    return results


def _splice(tokenizer, piece: Piece, parts, sampled, bars) -> Infill:
    """The sampled middle, clipped to the gap, between the prefix and the suffix."""
    start, end = parts.gap_start, parts.gap_end
    ids = [i for i in sampled.ids if i not in (tokenizer.pad_token_id, tokenizer.eos_token_id)]
    notes = tokenizer.codec.decode(tokenizer.layout.codec_indices(ids)).notes
    keep = notes.start < end - start
    notes = notes.take(keep)
    middle = NoteArray(notes.pitch, notes.start + start, np.minimum(notes.end, end - start) + start, notes.velocity)
    suffix = NoteArray(parts.suffix.pitch, parts.suffix.start + start, parts.suffix.end + start, parts.suffix.velocity)
    merged = NoteArray.concatenate([parts.prefix, middle, suffix]).sorted()
    meta = (piece.tempos, piece.time_signatures)
    return Infill(
        piece=Piece(merged, *meta, piece.name, piece.composer),
        middle=Piece(middle.sorted(), *meta, f"{piece.name} (bars {bars[0]}-{bars[1]})", piece.composer),
        gap_start=start, gap_end=end, bars=bars, words=tokenizer.decode(ids, skip_special_tokens=True),
        interventions=sampled.interventions, steps=sampled.steps, seconds=sampled.seconds, tokens=len(ids),
        ids=list(sampled.ids), score=sampled.score, candidate_scores=sampled.candidate_scores, chosen=sampled.chosen,
    )  # fmt: skip


def _options(**options) -> dict:
    check_generation_settings(
        max_new_tokens=options["max_new_tokens"], top_k=options["top_k"], top_p=options["top_p"],
        temperature=options["temperature"] if options["do_sample"] else None,
        num_return_sequences=options["num_return_sequences"], candidates=options["candidates"],
        max_note_quarters=options["max_note_quarters"], grid=options["grid"], key_guidance=options["key_guidance"],
    )  # fmt: skip
    return options


def infill_piece(
    model,
    tokenizer,
    piece: Piece,
    start_bar: int,
    end_bar: int,
    *,
    composer: str | None = None,
    do_sample: bool = True,
    top_k: int | None = 5,
    top_p: float | None = None,
    temperature: float | None = 1.0,
    seed: int | None = None,
    candidates: int = 1,
    num_return_sequences: int = 1,
    max_new_tokens: int | None = None,
    max_polyphony: int = 12,
    max_note_quarters: float | None = DEFAULT_MAX_NOTE_QUARTERS,
    progress: bool = False,
    grid: int | str | None = None,
    key_guidance: float = 0.0,
) -> list[Infill]:
    """Regenerate bars ``start_bar..end_bar`` (1-based, inclusive) of ``piece``, keeping everything around them.

    Args:
        model: a causal LM trained with fill-in-the-middle windows (`MaiaForCausalLM`).
        tokenizer (`MaiaTokenizer`): its tokenizer, with the FIM tokens.
        piece (`Piece`): the piece (e.g. from :func:`~maia_hf.generation.read_prompt`); bars follow its
            time signatures.
        start_bar, end_bar (`int`): the gap, in bars of the piece.
        composer (`str`, *optional*): composer, any spelling (default: the piece's, else unknown).
        candidates (`int`, *optional*, defaults to 1): sample this many middles as one batch and keep the
            likeliest (their scores are in :attr:`Infill.candidate_scores`).
        max_new_tokens (`int`, *optional*): token budget (default 160 a bar).
        grid (`int` or `str`, *optional*): keep the new onsets on a grid; ``"auto"``: the one the music
            around the gap keeps (:func:`~maia_hf.generation.prompt_grid`).
        key_guidance (`float`, *optional*, defaults to 0): lean toward the pitch classes of the music around
            the gap (:class:`~maia_hf.generation.PitchClassGuidance`).
        do_sample, top_k, top_p, temperature, seed, num_return_sequences, max_polyphony, max_note_quarters,
            progress: as for :func:`~maia_hf.generation.continue_piece`.

    Returns:
        `list[Infill]`, one per returned sequence.

    Raises:
        MaiaInputError: bars outside the piece or an empty range, or a model that was not trained to infill.

    Example:

    ```python
    >>> from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaTokenizer
    >>> from maia_hf.generation import infill_piece, read_prompt
    >>> tokenizer = MaiaTokenizer()
    >>> config = MaiaConfig(vocab_size=len(tokenizer), n_layer=1, n_head=2, n_embd=16, n_inner=32, n_positions=64)
    >>> model = MaiaForCausalLM(config).eval()  # random weights
    >>> piece = read_prompt(" ".join(f"p{60 + i} wait24 endp{60 + i} wait24" for i in range(4)))  # 4 bars of 4/4
    >>> (result,) = infill_piece(model, tokenizer, piece, 2, 3, seed=0, candidates=2)
    >>> result.gap_start, result.gap_end, len(result.candidate_scores)
    (48, 144, 2)
    >>> kept = [n for n in result.piece.notes.as_tuples() if n[2] <= 48 or n[1] >= 144]
    >>> kept == [n for n in piece.notes.as_tuples() if n[2] <= 48 or n[1] >= 144]
    True

    ```
    """
    check = _options(**{k: v for k, v in locals().items() if k not in ("model", "tokenizer", "piece", "start_bar",
                                                                         "end_bar")})  # fmt: skip
    spq = tokenizer.codec.config.steps_per_quarter
    gap = bar_span(piece, start_bar, end_bar, spq)
    return _fill(model, tokenizer, piece, gap, (start_bar, end_bar), check)


def infill_between(
    model,
    tokenizer,
    before: Piece,
    after: Piece,
    bars: int,
    **options,
) -> list[Infill]:
    """Write ``bars`` new bars between ``before`` and ``after``: a bridge from one passage into the other.

    ``after`` is moved to start ``bars`` bars after the bar line that ends ``before`` (bars in ``before``'s
    time signature); the result holds both passages and the bridge. The keywords are those of
    :func:`infill_piece`.
    """
    if isinstance(bars, bool) or not isinstance(bars, (int, np.integer)) or bars < 1:
        raise MaiaInputError(f"a bridge needs at least 1 bar, got {bars!r}")
    if not len(before.notes) or not len(after.notes):
        empty = "the passage before" if not len(before.notes) else "the passage after"
        raise MaiaInputError(f"{empty} the bridge has no notes; give two passages with notes")
    spq = tokenizer.codec.config.steps_per_quarter
    start = prompt_end(before, spq)
    lines = before.bar_lines(spq, until=start + bars * 16 * spq + 1)
    first_bar = lines.index(start) + 1
    end = [b for b in lines if b > start][bars - 1]
    offset = end - _bar_floor(after, int(after.notes.start.min()), spq)
    moved = NoteArray(after.notes.pitch, after.notes.start + offset, after.notes.end + offset, after.notes.velocity)
    piece = Piece(NoteArray.concatenate([before.notes, moved]).sorted(), before.tempos, before.time_signatures,
                  f"{before.name} + {after.name}", before.composer or after.composer)  # fmt: skip
    defaults = dict(composer=None, do_sample=True, top_k=5, top_p=None, temperature=1.0, seed=None, candidates=1,
                    num_return_sequences=1, max_new_tokens=None, max_polyphony=12,
                    max_note_quarters=DEFAULT_MAX_NOTE_QUARTERS, progress=False, grid=None,
                    key_guidance=0.0)  # fmt: skip
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(f"infill_between() got unexpected keyword arguments {unknown}")
    check = _options(**{**defaults, **options})
    return _fill(model, tokenizer, piece, (start, end), (first_bar, first_bar + bars - 1), check)


def _bar_floor(piece: Piece, step: int, spq: int) -> int:
    """The bar line of ``piece`` at or before ``step``: ``after`` keeps its position inside its bar."""
    return max(b for b in piece.bar_lines(spq, until=step) if b <= step)
