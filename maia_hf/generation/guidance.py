"""Keep a continuation in its prompt's key and on its prompt's rhythmic grid.

Two aids at generation time, both off unless asked for (``maia lacrimosa`` asks for both, see
``docs/maia-small.md``). They act on the sampling distribution only; the model and its score of what it
drew (:class:`~maia_hf.generation.SequenceLogProbability`, the raw logits) are untouched.

- **Grid** (``grid="auto"`` or a number of steps): every onset of the continuation falls on the grid, through
  the constraints (:class:`~maia_hf.generation.NotewiseConstraintProcessor` ``grid_steps``). ``"auto"`` takes
  the coarsest subdivision of the beat that the prompt's own onsets keep (:func:`prompt_grid`: eighths for
  Mozart's Lacrimosa; none for a prompt in free rhythm, which then stays free).
- **Key guidance** (``key_guidance=STRENGTH``): note-ons are weighted by the prompt's pitch-class profile,
  and by how far the note-ons in view are from the prompt's own shares (a pitch class already overused is
  leaned away from), raised to ``STRENGTH`` and renormalised among themselves, so the music stays as dense
  as the model makes it (:class:`~maia_hf.generation.PitchClassGuidance`); 0 is off, 1 weighs model and
  prompt alike. No pitch class is ever forbidden.
"""

from __future__ import annotations

import numpy as np

from ..errors import MaiaInputError
from .settings import _name

__all__ = ["GRID_SHARE", "check_guidance", "parse_grid", "prompt_grid", "resolve_guidance"]

# The share of a prompt's onsets a grid must hold for "auto" to take it, and the fewest onsets to judge by.
GRID_SHARE = 0.98
MIN_ONSETS = 16
# A grid divides the longest wait (4 quarter notes), so a long rest written in full waits stays on it.
_WHOLE = 4


def check_guidance(grid=None, key_guidance=0.0, steps_per_quarter: int = 12, flags: bool = False) -> None:
    """Refuse a grid or key-guidance value generation cannot use (``flags=True`` names the CLI's flags).

    Example:

    ```python
    >>> from maia_hf.generation.guidance import check_guidance
    >>> check_guidance("auto", 0.5)
    >>> check_guidance(5)
    Traceback (most recent call last):
    ...
    maia_hf.errors.MaiaInputError: grid must be 'auto', 'off' or a number of steps that divides 48 (6 is an ...

    ```
    """
    whole = _WHOLE * steps_per_quarter
    if grid not in (None, "auto", "off"):
        ok = isinstance(grid, int) and not isinstance(grid, bool) and grid >= 1 and whole % grid == 0
        if not ok:
            raise MaiaInputError(
                f"{_name('grid', flags)} must be 'auto', 'off' or a number of steps that divides {whole} "
                f"({steps_per_quarter // 2} is an eighth note), got {grid!r}"
            )
    if key_guidance is not None:
        ok = isinstance(key_guidance, (int, float)) and not isinstance(key_guidance, bool)
        if not ok or not np.isfinite(key_guidance) or not 0 <= key_guidance <= 10:
            raise MaiaInputError(
                f"{_name('key_guidance', flags)} must be a number from 0 (off) to 10 (1 weighs the model and the "
                f"prompt's pitch classes alike), got {key_guidance!r}"
            )


def parse_grid(text: str):
    """A ``--grid`` value: ``auto``, ``off`` or a whole number of steps (checked by :func:`check_guidance`).

    >>> parse_grid("auto"), parse_grid("OFF"), parse_grid("6"), parse_grid("x")
    ('auto', 'off', 6, 'x')
    """
    word = text.strip().lower()
    return int(word) if word.isdigit() else (word if word in ("auto", "off") else text)


def prompt_grid(piece, steps_per_quarter: int = 12) -> int | None:
    """The coarsest subdivision of the beat that holds at least 98 % of the prompt's onsets (None: none does,
    or the prompt has fewer than 16 notes). Onsets are counted from the bar lines.

    Candidates, coarsest first, in steps of ``steps_per_quarter``: an eighth note, a triplet eighth, a
    sixteenth, a triplet sixteenth (6, 4, 3, 2 at 12 steps a quarter). A prompt in quarter notes gets
    eighths: the grid never binds a continuation more tightly than eighth notes.

    Example:

    ```python
    >>> from maia_hf.codec import NoteArray, Piece, TimeSignature
    >>> eighths = NoteArray.from_lists([60] * 24, list(range(0, 144, 6)), list(range(6, 150, 6)))
    >>> prompt_grid(Piece(eighths, time_signatures=[TimeSignature(0, 12, 8)]))
    6
    >>> sixteenths = NoteArray.from_lists([60] * 24, list(range(0, 72, 3)), list(range(3, 75, 3)))
    >>> prompt_grid(Piece(sixteenths)), prompt_grid(Piece(NoteArray.from_lists([60] * 20, range(20), range(1, 21))))
    (3, None)

    ```
    """
    notes = piece.notes if piece is not None else None
    if notes is None or len(notes) < MIN_ONSETS:
        return None
    spq = steps_per_quarter
    onsets = np.asarray(notes.start)
    lines = np.asarray(piece.bar_lines(spq, until=int(onsets.max()) + 1) or [0])
    phase = onsets - lines[np.clip(np.searchsorted(lines, onsets, side="right") - 1, 0, None)]
    for grid in sorted({spq // d for d in (2, 3, 4, 6) if spq % d == 0 and spq // d > 1}, reverse=True):
        if np.mean(phase % grid == 0) >= GRID_SHARE:
            return grid
    return None


def resolve_guidance(piece, grid=None, key_guidance=0.0, steps_per_quarter: int = 12):
    """``(grid_steps, profile)`` for a prompt: the onset grid in steps (None: free) and the prompt's
    :class:`~maia_hf.generation.pitch_guidance.KeyProfile` the key guidance leans toward (None: no guidance).

    Raises:
        MaiaInputError: a bad value (:func:`check_guidance`), or key guidance asked for a prompt without notes.
    """
    check_guidance(grid, key_guidance, steps_per_quarter)
    if grid == "auto":
        grid_steps = prompt_grid(piece, steps_per_quarter)
    else:
        grid_steps = grid if isinstance(grid, int) and grid > 1 else None
    profile = None
    if key_guidance:
        from .pitch_guidance import KeyProfile

        if piece is None or len(piece.notes) == 0:
            raise MaiaInputError(
                "key guidance leans toward the prompt's pitch classes, and there is no prompt: give one, or "
                "set the key guidance to 0"
            )
        profile = KeyProfile.of(piece.notes)
    return grid_steps, profile
