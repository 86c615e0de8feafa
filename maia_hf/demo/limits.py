"""What one request to the web demo may ask for: upload size, prompt notes, bars, candidates, seconds.

A public demo runs on one shared machine, so every request is bounded before any work starts, and each
refusal is a one-line `MaiaInputError` that names the limit and what to ask for instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MaiaInputError

__all__ = ["DemoLimits"]


@dataclass(frozen=True)
class DemoLimits:
    """The bounds the demo puts on a request.

    Args:
        max_upload_bytes (`int`, *optional*, defaults to 2,000,000): largest file a user may upload.
        max_prompt_notes (`int`, *optional*, defaults to 20,000): most notes in the prompt (after the bars kept).
        max_bars (`int`, *optional*, defaults to 32): most bars to add (continue) or to regenerate (infill).
        max_candidates (`int`, *optional*, defaults to 8): most candidates sampled for best-of-N.
        max_seconds (`float`, *optional*, defaults to 120): generation time after which decoding stops.

    Example:

    ```python
    >>> from maia_hf.demo import DemoLimits
    >>> limits = DemoLimits(max_bars=16)
    >>> limits.check_request(bars=8, candidates=2)
    >>> limits.check_request(bars=40, candidates=1)
    Traceback (most recent call last):
    ...
    maia_hf.errors.MaiaInputError: 40 bars is more than this demo writes at once (at most 16); ask for fewer bars

    ```
    """

    max_upload_bytes: int = 2_000_000
    max_prompt_notes: int = 20_000
    max_bars: int = 32
    max_candidates: int = 8
    max_seconds: float = 120.0

    def check_upload_size(self, size: int, name: str) -> None:
        """Refuse an upload of ``size`` bytes over :attr:`max_upload_bytes`."""
        if size > self.max_upload_bytes:
            raise MaiaInputError(
                f"{name!r} is {_size(size)}; this demo takes files up to {_size(self.max_upload_bytes)} "
                "(upload fewer bars of it, or run `maia generate` on your own machine)"
            )

    def check_prompt_notes(self, count: int) -> None:
        """Refuse a prompt of more than :attr:`max_prompt_notes` notes."""
        if count > self.max_prompt_notes:
            raise MaiaInputError(
                f"the prompt has {count:,} notes; this demo continues at most {self.max_prompt_notes:,} "
                "(set 'bars of the prompt to keep' lower)"
            )

    def check_request(self, bars: int, candidates: int) -> None:
        """Refuse more bars than :attr:`max_bars` or more candidates than :attr:`max_candidates`."""
        if bars > self.max_bars:
            raise MaiaInputError(
                f"{bars} bars is more than this demo writes at once (at most {self.max_bars}); ask for fewer bars"
            )
        if candidates > self.max_candidates:
            raise MaiaInputError(
                f"{candidates} candidates is more than this demo samples at once (at most {self.max_candidates})"
            )

    def describe(self) -> str:
        """The limits in one sentence, for the page."""
        return (
            f"Files up to {_size(self.max_upload_bytes)} and {self.max_prompt_notes:,} notes; "
            f"at most {self.max_bars} bars and {self.max_candidates} candidates a request; "
            f"generation stops after {self.max_seconds:g} s."
        )


def _size(n_bytes: int) -> str:
    """``2.0 MB`` for large sizes, ``1,234 bytes`` for small ones."""
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 100_000 else f"{n_bytes:,} bytes"
