"""``maia demo``: serve the Gradio web demo (continue or infill a piece in the browser).

Example::

    maia demo --port 7860                 # http://127.0.0.1:7860
    maia demo --host 0.0.0.0 --model runs/maia-small
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register", "run_demo"]

EXIT_NO_GRADIO = 1


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``demo`` to the ``maia`` command's subparsers."""
    p = subparsers.add_parser(
        "demo",
        help="serve the web demo (Gradio): continue or infill a piece in the browser",
        description="Serve maia's Gradio demo: upload a MIDI, MusicXML, .krn or ABC file (or pick an example), "
        "continue it or regenerate chosen bars, listen, and download MIDI and MusicXML. Needs the demo extra: "
        "pip install 'maia-hf[demo]' (see docs/demo.md).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1; 0.0.0.0: all)")
    p.add_argument("--port", type=int, metavar="N", help="port (default: the first free one from 7860)")
    p.add_argument("--model", metavar="DIR", help="a saved maia model directory (default: the model shipped with maia)")
    p.add_argument(
        "--share", type=_true_or_false, default=False, metavar="{true,false}",
        help="also serve through a public gradio.live link (default false; needs the network)",
    )  # fmt: skip
    p.set_defaults(handler=run_demo)
    return p


def run_demo(args) -> int:
    """Build the demo and serve it until interrupted; without gradio, say how to install it (exit status 1)."""
    from ..demo import require_gradio
    from ..errors import MaiaInputError

    try:
        require_gradio()
    except MaiaInputError as exc:
        print(f"maia demo: error: {exc}", file=sys.stderr)
        return EXIT_NO_GRADIO
    from ..demo import build_demo, launch_demo

    launch_demo(build_demo(args.model), host=args.host, port=args.port, share=args.share)
    return 0


def _true_or_false(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
