"""The Gradio page: :func:`build_demo` lays it out and wires it to the handlers, :func:`launch_demo` serves it.

gradio is imported inside these functions (it is the optional ``demo`` extra), with its analytics off; the
page loads no fonts from a CDN, and requests run one at a time through one queue.
"""

from __future__ import annotations

import logging
import os

from ..errors import MaiaError, MaiaInputError
from .handlers import (
    PROMPT_EXAMPLES,
    READABLE_SUFFIXES,
    UPLOAD,
    LoadedModel,
    RequestFolders,
    Sampling,
    continue_request,
    escape_markdown,
    infill_request,
    read_demo_prompt,
)
from .limits import DemoLimits

__all__ = ["GRADIO_HINT", "build_demo", "launch_demo", "require_gradio"]

GRADIO_HINT = "the demo needs gradio: pip install 'maia-hf[demo]'"
THE_PROMPTS_COMPOSER = "(the prompt's)"
INTRO = """# maia: continue or infill a piece of music
Upload a MIDI, MusicXML, `.krn`, ABC or notewise file (or pick an example), choose how many bars to add,
and maia, a GPT-2 trained on classical piano music, writes them. **Infill** rewrites chosen bars of a piece."""
_OUTPUTS = 6  # status, audio, piano roll, MIDI, MusicXML, words
_log = logging.getLogger(__name__)


def require_gradio():
    """The gradio module (analytics off), or `MaiaInputError` saying how to install it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise MaiaInputError(GRADIO_HINT) from None
    return gradio


def _theme(gr):
    """gradio's default look with the browser's own fonts, so that the page asks no font CDN."""
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def _theme_goes_to_launch(gr) -> bool:
    return int(gr.__version__.split(".")[0]) >= 6  # gradio 6 moved theme from Blocks() to launch()


def build_demo(model_dir=None, limits: DemoLimits | None = None, folders: RequestFolders | None = None):
    """The demo as a `gr.Blocks`, its queue set up (one request at a time); serve it with :func:`launch_demo`.

    Args:
        model_dir (*optional*): a saved maia model (default: the model shipped with maia), loaded now.
        limits (`DemoLimits`, *optional*): the bounds on a request (default: `DemoLimits()`).
        folders (`RequestFolders`, *optional*): where requests write (default: a new temporary folder).

    Raises:
        MaiaInputError: gradio is not installed, or ``model_dir`` is not a saved maia model.
    """
    gr = require_gradio()
    limits = limits or DemoLimits()
    loaded = LoadedModel.load(model_dir)
    folders = folders or RequestFolders()
    themed = {} if _theme_goes_to_launch(gr) else {"theme": _theme(gr)}
    with gr.Blocks(title="maia", analytics_enabled=False, delete_cache=(3600, 3600), **themed) as demo:
        gr.Markdown(INTRO)
        with gr.Tab("Continue"), gr.Row():
            with gr.Column(scale=1):
                prompt = _prompt_controls(gr, "continue", limits)
                keep = gr.Slider(0, 64, value=0, step=1, label="bars of the prompt to keep", info="0: all of it")
                bars = gr.Slider(1, limits.max_bars, value=min(8, limits.max_bars), step=1, label="bars to add")
                sampling = _sampling_controls(gr, loaded, limits)
                button = gr.Button("Continue the piece", variant="primary", elem_id="maia-continue-run")
            with gr.Column(scale=2):
                outputs = _output_panel(gr, "continue")
        button.click(_continue_event(gr, loaded, folders, limits), [*prompt, keep, bars, *sampling], outputs,
                     concurrency_id="maia-generation")  # fmt: skip
        with gr.Tab("Infill"), gr.Row():
            with gr.Column(scale=1):
                prompt = _prompt_controls(gr, "infill", limits)
                first = gr.Number(value=5, precision=0, minimum=1, label="first bar to regenerate")
                last = gr.Number(value=6, precision=0, minimum=1, label="last bar to regenerate")
                sampling = _sampling_controls(gr, loaded, limits)
                button = gr.Button("Regenerate the bars", variant="primary", elem_id="maia-infill-run")
            with gr.Column(scale=2):
                outputs = _output_panel(gr, "infill")
        button.click(_infill_event(gr, loaded, folders, limits), [*prompt, first, last, *sampling], outputs,
                     concurrency_id="maia-generation")  # fmt: skip
        gr.Markdown(f"Model: `{loaded.name}`. {limits.describe()}")
    demo.queue(default_concurrency_limit=1, max_size=16)
    return demo


def launch_demo(demo, host: str | None = "127.0.0.1", port: int | None = None, share: bool = False,
                limits: DemoLimits | None = None, block: bool = True):  # fmt: skip
    """Serve ``demo`` on ``host:port`` (port None: the first free from 7860); ``block=False`` returns at once.

    Uploads over the limit are refused by the server itself (``max_file_size``) as well as by the handlers.
    """
    gr = require_gradio()
    limits = limits or DemoLimits()
    themed = {"theme": _theme(gr)} if _theme_goes_to_launch(gr) else {}
    return demo.launch(
        server_name=host, server_port=port, share=share, max_file_size=limits.max_upload_bytes,
        prevent_thread_lock=not block, show_error=False, ssr_mode=False, **themed,
    )  # fmt: skip


def _prompt_controls(gr, tab: str, limits: DemoLimits) -> list:
    source = gr.Dropdown([UPLOAD, *PROMPT_EXAMPLES], value=UPLOAD, label="prompt", elem_id=f"maia-{tab}-source")
    upload = gr.File(
        label=f"MIDI, MusicXML, .krn, ABC or notewise file (up to {limits.max_upload_bytes / 1e6:g} MB)",
        file_types=list(READABLE_SUFFIXES), type="filepath", elem_id=f"maia-{tab}-upload",
    )  # fmt: skip
    return [source, upload]


def _sampling_controls(gr, loaded: LoadedModel, limits: DemoLimits) -> list:
    composers = [THE_PROMPTS_COMPOSER, *loaded.tokenizer.composers]
    with gr.Accordion("sampling", open=False):
        return [
            gr.Dropdown(composers, value=THE_PROMPTS_COMPOSER, label="composer"),
            gr.Slider(1, 50, value=5, step=1, label="top-k", info="sample from the k likeliest words"),
            gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="temperature"),
            gr.Number(value=0, precision=0, label="seed", info="empty: a new piece each time"),
            gr.Slider(1, limits.max_candidates, value=1, step=1, label="candidates", info="best of N"),
            gr.Checkbox(value=False, label="keep the rhythmic grid",
                        info="every new note starts on the grid the music given keeps (e.g. eighth notes)"),
            gr.Slider(0.0, 3.0, value=0.0, step=0.25, label="key guidance",
                      info="lean toward the pitch classes of the music given (0: off)"),
        ]  # fmt: skip


def _output_panel(gr, tab: str) -> list:
    return [
        gr.Markdown(elem_id=f"maia-{tab}-status"),
        gr.Audio(type="filepath", label="listen", interactive=False, elem_id=f"maia-{tab}-audio"),
        gr.Image(type="filepath", label="piano roll: prompt and maia", interactive=False, elem_id=f"maia-{tab}-roll"),
        gr.File(label="MIDI", interactive=False, elem_id=f"maia-{tab}-midi"),
        gr.File(label="MusicXML", interactive=False, elem_id=f"maia-{tab}-musicxml"),
        gr.Textbox(label="notewise words", lines=3, max_lines=8, interactive=False, elem_id=f"maia-{tab}-words"),
    ]


def _sampling(composer, top_k, temperature, seed, candidates, grid=False, key_guidance=0.0) -> Sampling:
    return Sampling(
        composer=None if composer in (None, "", THE_PROMPTS_COMPOSER) else composer, top_k=int(top_k),
        temperature=float(temperature), seed=None if seed in (None, "") else int(seed), candidates=int(candidates),
        grid="auto" if grid else None, key_guidance=float(key_guidance or 0.0),
    )  # fmt: skip


def _page(work) -> tuple:
    """Run ``work() -> DemoResult`` and turn it, or its error, into the output panel's values."""
    try:
        result = work()
    except MaiaError as exc:
        return (f"**Error:** {escape_markdown(str(exc))}", *[None] * (_OUTPUTS - 2), "")
    except Exception:  # the page gets one line; the server's log gets the traceback
        _log.exception("maia demo: a request failed")
        failed = "**Error:** maia failed on this request (the server's log has the details)"
        return (failed, *[None] * (_OUTPUTS - 2), "")
    paths = [result.files.get(kind) for kind in ("wav", "png", "midi", "musicxml")]
    return (result.summary, *[str(path) if path is not None else None for path in paths], result.words)


def _continue_event(gr, loaded, folders, limits):
    # gradio finds the progress bar by a gr.Progress() default, created once per event here.
    def continue_piece(source, upload, keep, bars, *sampling, progress=gr.Progress()):  # noqa: B008
        def work():
            folder = folders.new()
            progress(0, desc="reading the prompt")
            piece = read_demo_prompt(source, upload, folder, loaded.tokenizer, limits, int(keep) or None)
            return continue_request(
                loaded, piece, int(bars), _sampling(*sampling), folder, limits, lambda f, d: progress(f, desc=d)
            )

        return _page(work)

    return continue_piece


def _infill_event(gr, loaded, folders, limits):
    def infill_bars(source, upload, first, last, *sampling, progress=gr.Progress()):  # noqa: B008
        def work():
            folder = folders.new()
            progress(0, desc="reading the piece")
            piece = read_demo_prompt(source, upload, folder, loaded.tokenizer, limits)
            return infill_request(
                loaded, piece, int(first or 0), int(last or 0), _sampling(*sampling), folder, limits,
                lambda f, d: progress(f, desc=d),
            )  # fmt: skip

        return _page(work)

    return infill_bars
