"""Every exception maia raises on purpose, in one place (importable as ``maia_hf.MaiaError`` etc.).

Each message names the input and the fix, so the command line can print it as one line and exit
non-zero instead of showing a traceback.
"""

from __future__ import annotations

__all__ = ["MaiaError", "MaiaHubError", "MaiaInputError", "MaiaRenderError", "MaiaTokenError"]


class MaiaError(Exception):
    """Base class of every error maia raises on purpose."""


class MaiaInputError(MaiaError, ValueError):
    """A file, score, flag or setting that maia cannot use; the message names the input and the fix."""


class MaiaTokenError(MaiaError, ValueError):
    """A notewise text with a word outside the vocabulary; the message names the word and where."""


class MaiaRenderError(MaiaError, RuntimeError):
    """Rendering (WAV, MusicXML) failed; the message says which tool is missing and how to install it."""


class MaiaHubError(MaiaError, OSError):
    """A Hub upload or download failed; the message names the repository and the fix (login, endpoint)."""
