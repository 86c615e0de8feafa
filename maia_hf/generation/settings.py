"""The one check of generation settings, run by `continue_piece` and `continue_ids` and, before a model
loads, by ``maia generate`` / ``maia lacrimosa``: every bad value gets one error naming it and the fix.

Lengths are bounded so that a typo cannot eat the machine's memory or run for days: `MAX_BARS` bars,
`MAX_NEW_TOKENS` tokens (about 1,200 bars at the 160 tokens a bar that ``bars`` budgets).
"""

from __future__ import annotations

import math

from ..errors import MaiaInputError

__all__ = ["MAX_BARS", "MAX_NEW_TOKENS", "MAX_SEQUENCES", "check_candidates", "check_generation_settings"]

MAX_BARS = 1_000
MAX_NEW_TOKENS = 200_000
MAX_SEQUENCES = 64


def _name(name: str, flags: bool) -> str:
    return f"--{name.replace('_', '-')}" if flags else name


def _whole(value, name: str, flags: bool, low: int, high: int | None = None) -> None:
    ok = not isinstance(value, bool) and isinstance(value, int) and value >= low and (high is None or value <= high)
    if not ok:
        bound = f"between {low} and {high:,}" if high is not None else f">= {low}"
        raise MaiaInputError(f"{_name(name, flags)} must be a whole number {bound}, got {value!r}")


def check_candidates(candidates, flags: bool = False) -> int:
    """``candidates`` (sample N, keep the likeliest) as a count of at least one, else a clear error.

    Example:

    ```python
    >>> from maia_hf.generation import check_candidates
    >>> check_candidates(4)
    4
    >>> check_candidates(0)
    Traceback (most recent call last):
    ...
    maia_hf.errors.MaiaInputError: candidates must be a whole number >= 1 (sample N, keep the likeliest), got 0

    ```
    """
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
        raise MaiaInputError(
            f"{_name('candidates', flags)} must be a whole number >= 1 (sample N, keep the likeliest), "
            f"got {candidates!r}"
        )
    return candidates


def check_generation_settings(
    *,
    bars=None,
    max_new_tokens=None,
    prompt_bars=None,
    top_k=5,
    top_p=None,
    temperature=1.0,
    num_return_sequences=1,
    candidates=1,
    max_note_quarters=12.0,
    grid=None,
    key_guidance=0.0,
    flags: bool = False,
) -> None:
    """Refuse any setting generation cannot honour (``flags=True`` names them as the CLI's flags).

    Raises:
        MaiaInputError: the first bad setting, its value and what is allowed.

    Example:

    ```python
    >>> from maia_hf.generation import check_generation_settings
    >>> check_generation_settings(bars=8, top_k=5, temperature=0.9)
    >>> check_generation_settings(top_p=1.5, flags=True)
    Traceback (most recent call last):
    ...
    maia_hf.errors.MaiaInputError: --top-p must be above 0 and at most 1 (nucleus sampling), got 1.5

    ```
    """
    if bars is not None:
        _whole(bars, "bars", flags, 1, MAX_BARS)
    if max_new_tokens is not None:
        _whole(max_new_tokens, "max_new_tokens", flags, 1, MAX_NEW_TOKENS)
    if prompt_bars is not None:
        _whole(prompt_bars, "prompt_bars", flags, 1, MAX_BARS)
    if top_k is not None:
        _whole(top_k, "top_k", flags, 0)
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise MaiaInputError(f"{_name('top_p', flags)} must be above 0 and at most 1 (nucleus sampling), got {top_p!r}")
    if temperature is not None and not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
                                        and temperature > 0):  # fmt: skip
        raise MaiaInputError(
            f"{_name('temperature', flags)} must be above 0 (1 samples the model as it is), got {temperature!r}"
        )
    _whole(num_return_sequences, "num_return_sequences", flags, 1, MAX_SEQUENCES)
    check_candidates(candidates, flags)
    if max_note_quarters is not None and not (isinstance(max_note_quarters, (int, float)) and max_note_quarters > 0):
        off = "0 for no limit" if flags else "or None"
        raise MaiaInputError(
            f"{_name('max_note_quarters', flags)} must be a positive number of quarter notes ({off}), "
            f"got {max_note_quarters!r}"
        )
    from .guidance import check_guidance

    check_guidance(grid, key_guidance, flags=flags)
