"""maia: compose classical music with the Hugging Face stack.

``import maia_hf`` registers maia with `transformers` (``AutoConfig``, ``AutoTokenizer``...), so
``AutoTokenizer.from_pretrained("tokenizer")`` gives a :class:`MaiaTokenizer` afterwards.
Public names are loaded on first use, and the ``maia`` command line defers the registration (and
its ~2 s import of torch) to the subcommands that need it, so ``maia --help`` answers at once.
"""

from __future__ import annotations

import importlib
import os
import sys

__version__ = "0.1.0"

# The model that ships inside the package (a Hugging Face model directory): the default of
# `maia generate`, `maia lacrimosa` and the pipelines' examples.
DEFAULT_MODEL = os.path.join(os.path.dirname(__file__), "resources", "maia-small")

_LAZY = {
    "CodecConfig": "codec",
    "MaiaError": "errors",
    "MaiaHubError": "errors",
    "MaiaInputError": "errors",
    "MaiaRenderError": "errors",
    "MaiaTokenError": "errors",
    "NoteArray": "notes",
    "NotewiseCodec": "codec",
    "Piece": "notes",
    "load_pieces": "io",
    "read_raw": "io",
    "write_midi": "io",
    "write_musicxml": "scores",
    "MaiaTokenizer": "tokenization_maia",
    "MaiaConfig": "configuration_maia",
    "BuildConfig": "data",
    "build_dataset": "data",
    "MaiaLstmConfig": "configuration_maia_lstm",
    "MaiaForCausalLM": "modeling_maia",
    "MaiaLstmForCausalLM": "modeling_maia_lstm",
    "MusicGenerationPipeline": "pipelines",
    "register": "registration",
    "EvaluationConfig": "evaluation",
    "evaluate_models": "evaluation",
    "notewise_bleu": "metrics",
}

__all__ = sorted(_LAZY) + ["DEFAULT_MODEL", "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'maia_hf' has no attribute {name!r}")


def __dir__():
    return __all__


def _started_as_cli() -> bool:
    # The `maia` console script and `python -m maia_hf` import this package first; they register
    # lazily, inside the subcommands that use transformers.
    if os.path.basename(sys.argv[0] if sys.argv else "") == "maia":
        return True
    argv = getattr(sys, "orig_argv", [])
    return any(a == "-m" and b in ("maia_hf", "maia_hf.cli") for a, b in zip(argv, argv[1:], strict=False))


if not _started_as_cli():
    from .registration import register as _register

    _register()
