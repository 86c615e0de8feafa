"""Does a continuation stay in the prompt's key and metre? Three figures a listener hears, on any continuation.

- **Key.** The pitch-class profile (each pitch class weighted by how long it sounds) of the continuation,
  correlated with the prompt's (Pearson r: 1 is the same distribution of pitch classes), and both keys as the
  Krumhansl-Kessler profiles estimate them (the best of the 24 major and minor key profiles).
- **Metre.** The share of the continuation's onsets on the metre's grid: the eighth notes of a 12/8 bar (or
  the subdivision ``grid`` the caller gives), counted from the bar lines; and on the beats (a dotted quarter
  in 12/8, a quarter in 4/4).
- **Held notes.** The longest note, in bars: a model whose window lost a note's onset can hold it for bars.

:func:`continuation_fidelity` gives all of them; ``maia lacrimosa`` prints them for its continuation beside
the same figures of Süssmayr's completion when ``../shared/reference/lacrimosa-orchestral.mid`` is there.
"""

from __future__ import annotations

import numpy as np

from ..notes import NoteArray, Piece

__all__ = ["continuation_fidelity", "estimate_key", "pitch_class_profile"]

# Krumhansl & Kessler (1982) probe-tone profiles, C major and C minor.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]


def pitch_class_profile(notes: NoteArray) -> np.ndarray:
    """Steps each pitch class sounds, as a (12,) distribution (zeros for no notes)."""
    weights = np.bincount(notes.pitch % 12, weights=(notes.end - notes.start).astype(float), minlength=12)
    total = weights.sum()
    return weights / total if total else weights


def estimate_key(notes: NoteArray) -> tuple[str, float]:
    """The likeliest key (``"D minor"``) by the Krumhansl-Kessler profiles, and its correlation.

    >>> from maia_hf.codec import NoteArray
    >>> d_minor = NoteArray.from_lists([62, 65, 69, 62, 64, 65, 67, 69, 70, 73], [0] * 10, [48, 24, 24] + [6] * 7)
    >>> estimate_key(d_minor)[0]
    'D minor'
    """
    profile = pitch_class_profile(notes)
    if not profile.any():
        return "none", 0.0
    best = ("none", -2.0)
    for tonic in range(12):
        for mode, template in (("major", _MAJOR), ("minor", _MINOR)):
            r = float(np.corrcoef(profile, np.roll(template, tonic))[0, 1])
            if r > best[1]:
                best = (f"{_NAMES[tonic]} {mode}", r)
    return best


def _bar_phase(piece: Piece, steps: np.ndarray, spq: int) -> tuple[np.ndarray, np.ndarray]:
    """Each step's distance from the bar line before it, and that bar's length."""
    lines = np.array(piece.bar_lines(spq, until=int(steps.max()) + 1 if len(steps) else 0) or [0])
    index = np.searchsorted(lines, steps, side="right") - 1
    lengths = np.diff(np.append(lines, lines[-1] + (lines[-1] - lines[-2] if len(lines) > 1 else 4 * spq)))
    return steps - lines[index], lengths[index]


def continuation_fidelity(piece: Piece, prompt_end: int, steps_per_quarter: int = 12, grid: int | None = None) -> dict:
    """Key, metre and held-note figures of the notes of ``piece`` from ``prompt_end`` on, against those before.

    Args:
        piece (`Piece`): prompt and continuation together (its time signatures give the bars).
        prompt_end (`int`): the step where the continuation starts.
        grid (`int`, *optional*): the onset grid in steps (default: an eighth note in compound metres such as
            6/8 and 12/8, a sixteenth otherwise).

    Returns:
        `dict`: ``key_correlation`` (r of the two pitch-class profiles), ``prompt_key``, ``continuation_key``,
        ``onsets_on_grid`` and ``onsets_on_beats`` (shares of the continuation's onsets), ``grid_steps``,
        ``longest_note_bars``, ``notes``.

    Example:

    ```python
    >>> from maia_hf.codec import NoteArray, Piece, TimeSignature
    >>> notes = NoteArray.from_lists([62, 65, 69, 62, 65, 69], [0, 6, 12, 144, 150, 155], [6, 12, 18, 150, 155, 160])
    >>> f = continuation_fidelity(Piece(notes, time_signatures=[TimeSignature(0, 12, 8)]), prompt_end=144)
    >>> round(f["key_correlation"], 2), f["grid_steps"], round(f["onsets_on_grid"], 2), f["onsets_on_beats"]
    (0.99, 6, 0.67, 0.3333333333333333)

    ```
    """
    spq = steps_per_quarter
    notes = piece.notes
    before = notes.take(notes.start < prompt_end)
    after = notes.take(notes.start >= prompt_end)
    signature = next((ts for ts in sorted(piece.time_signatures, key=lambda t: t.step) if ts.step <= prompt_end), None)
    numerator, denominator = (signature.numerator, signature.denominator) if signature else (4, 4)
    compound = denominator == 8 and numerator % 3 == 0 and numerator > 3
    grid = grid or (spq // 2 if compound else spq // 4)
    beat = 3 * spq // 2 if compound else 4 * spq // denominator
    p, c = pitch_class_profile(before), pitch_class_profile(after)
    correlation = float(np.corrcoef(p, c)[0, 1]) if p.any() and c.any() and p.std() and c.std() else 0.0
    phase, bar = _bar_phase(piece, after.start, spq)
    longest = (after.end - after.start) / bar if len(after) else np.zeros(1)
    return {
        "notes": int(len(after)),
        "key_correlation": correlation,
        "prompt_key": estimate_key(before)[0],
        "continuation_key": estimate_key(after)[0],
        "grid_steps": int(grid),
        "onsets_on_grid": float(np.mean(phase % grid == 0)) if len(after) else 0.0,
        "onsets_on_beats": float(np.mean(phase % beat == 0)) if len(after) else 0.0,
        "longest_note_bars": float(longest.max()),
    }
