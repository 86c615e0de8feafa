"""maia's web demo: a Gradio page that continues or infills a piece, served by ``maia demo`` or as a Space.

- ``limits``: :class:`DemoLimits`, the bounds on one request (upload size, notes, bars, candidates, seconds).
- ``handlers``: the work of a request as plain functions (:func:`continue_request`, :func:`infill_request`),
  testable without gradio or a browser.
- ``watch``: :class:`~maia_hf.demo.watch.DecodingWatch`, the progress report and the deadline of a run.
- ``app``: :func:`build_demo` (the `gr.Blocks` page) and :func:`launch_demo`.

gradio is an optional extra (``pip install 'maia-hf[demo]'``) imported only by :func:`build_demo`,
:func:`launch_demo` and :func:`require_gradio`, which say how to install it where it is missing.

Example (``app.py`` at the repository root does this)::

    from maia_hf.demo import build_demo, launch_demo

    launch_demo(build_demo())  # http://127.0.0.1:7860
"""

from .app import GRADIO_HINT, build_demo, launch_demo, require_gradio
from .handlers import (
    PROMPT_EXAMPLES,
    READABLE_SUFFIXES,
    UPLOAD,
    DemoResult,
    LoadedModel,
    RequestFolders,
    Sampling,
    continue_request,
    copy_upload,
    infill_request,
    read_demo_prompt,
)
from .limits import DemoLimits

__all__ = [
    "GRADIO_HINT",
    "PROMPT_EXAMPLES",
    "READABLE_SUFFIXES",
    "UPLOAD",
    "DemoLimits",
    "DemoResult",
    "LoadedModel",
    "RequestFolders",
    "Sampling",
    "build_demo",
    "continue_request",
    "copy_upload",
    "infill_request",
    "launch_demo",
    "read_demo_prompt",
    "require_gradio",
]
