"""Rendering: WAV through fluidsynth, piano-roll PNGs, and every output format of a generated piece."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from .codec import Piece
from .errors import MaiaRenderError
from .io import format_notewise, write_midi, write_musicxml

__all__ = ["find_soundfont", "piano_roll", "render_wav", "write_outputs"]

SOUNDFONT_PATHS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)
INSTALL_HINT = "on Debian/Ubuntu: apt-get install fluidsynth fluid-soundfont-gm (or set MAIA_SOUNDFONT=path.sf2)"


def find_soundfont() -> Path | None:
    """A General MIDI soundfont: ``$MAIA_SOUNDFONT`` if set, else Debian's FluidR3_GM where installed."""
    configured = os.environ.get("MAIA_SOUNDFONT")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    return next((Path(p) for p in SOUNDFONT_PATHS if Path(p).is_file()), None)


def render_wav(midi_path, wav_path, soundfont=None, sample_rate: int = 44100, gain: float = 0.5) -> Path:
    """Render a MIDI file to WAV with fluidsynth.

    Raises:
        MaiaRenderError: fluidsynth or a soundfont is missing (the message says how to install them),
            or fluidsynth failed.
    """
    binary = shutil.which("fluidsynth")
    if binary is None:
        raise MaiaRenderError(f"cannot write {wav_path}: fluidsynth is not installed; {INSTALL_HINT}")
    soundfont = Path(soundfont) if soundfont else find_soundfont()
    if soundfont is None or not soundfont.is_file():
        raise MaiaRenderError(f"cannot write {wav_path}: no General MIDI soundfont found; {INSTALL_HINT}")
    wav_path = Path(wav_path)
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    # -g 0.5: fluidsynth's default gain clips dense piano textures.
    command = [
        binary,
        "-ni",
        "-g",
        str(gain),
        "-r",
        str(sample_rate),
        "-F",
        str(wav_path),
        str(soundfont),
        str(midi_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not wav_path.exists():
        raise MaiaRenderError(f"fluidsynth failed on {midi_path}: {result.stderr.strip()[-300:]}")
    return wav_path


def piano_roll(
    piece: Piece, path, prompt_end: int | None = None, steps_per_quarter: int = 12, title: str = "",
    highlight=None,
) -> Path:  # fmt: skip
    """Draw the piece as a piano roll: prompt notes (before ``prompt_end``) and continuation in two colours,
    bar lines in grey. With ``highlight=(start, end)`` or a list of them (infilled gaps, in steps) the notes
    that start inside a gap are maia's and the rest the piece's, with the gaps' edges dashed."""
    from .plotting import pyplot

    plt = pyplot()

    notes = piece.notes
    end = int(notes.end.max()) if len(notes) else steps_per_quarter * 4
    bars = piece.bar_lines(steps_per_quarter, until=end)
    fig, ax = plt.subplots(figsize=(max(8.0, min(40.0, end / (6 * steps_per_quarter))), 5), dpi=100)
    for line in bars:
        ax.axvline(line / steps_per_quarter, color="#dddddd", linewidth=0.6, zorder=0)
    spans = _spans(highlight)
    if spans:
        is_prompt = np.ones(len(notes), dtype=bool)
        for start, stop in spans:
            is_prompt &= (notes.start < start) | (notes.start >= stop)
    else:
        is_prompt = notes.start < (prompt_end if prompt_end is not None else end + 1)
    kept = "piece" if spans else "prompt"
    for mask, colour, label in ((is_prompt, "#3b6ea5", kept), (~is_prompt, "#d1495b", "maia")):
        if mask.any():
            starts = notes.start[mask] / steps_per_quarter
            widths = (notes.end[mask] - notes.start[mask]) / steps_per_quarter
            ax.barh(notes.pitch[mask], widths, left=starts, height=0.8, color=colour, label=label, zorder=2)
    edges = [edge for span in spans for edge in span] if spans else (() if prompt_end is None else (prompt_end,))
    for edge in edges:
        ax.axvline(edge / steps_per_quarter, color="black", linewidth=1.0, linestyle="--", zorder=3)
    ax.set_xlabel("quarter notes")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title or piece.name)
    if len(notes):
        ax.set_ylim(notes.pitch.min() - 2, notes.pitch.max() + 2)
        ax.legend(loc="upper right")
    ax.set_xlim(0, end / steps_per_quarter)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _spans(highlight) -> list[tuple[int, int]]:
    if highlight is None:
        return []
    if len(highlight) == 2 and all(isinstance(x, (int, np.integer)) for x in highlight):
        return [(int(highlight[0]), int(highlight[1]))]
    return [(int(a), int(b)) for a, b in highlight]


def write_outputs(
    piece: Piece, out_stem, codec, prompt_end: int | None = None, wav: bool = True,
    highlight=None,
) -> dict[str, Path | str]:  # fmt: skip
    """Write a piece as MIDI, MusicXML, notewise text, piano-roll PNG and (where possible) WAV.

    ``highlight`` (an infilled gap ``(start, end)`` in steps, or a list of them) colours the gaps' notes apart
    in the piano roll.

    Returns a dict of what was written; where the WAV could not be rendered, ``"wav_error"`` holds why.
    """
    stem = Path(out_stem)
    stem = stem.with_suffix("") if stem.suffix.lower() in (".mid", ".midi") else stem
    spq = codec.config.steps_per_quarter
    written: dict[str, Path | str] = {}
    written["midi"] = write_midi(piece, stem.with_suffix(".mid"), spq)
    written["musicxml"] = write_musicxml(piece, stem.with_suffix(".musicxml"), spq)
    text = stem.with_suffix(".txt")
    text.write_text(format_notewise([piece], codec), encoding="utf-8")
    written["notewise"] = text
    written["png"] = piano_roll(piece, stem.with_suffix(".png"), prompt_end, spq, highlight=highlight)
    if wav:
        try:
            written["wav"] = render_wav(written["midi"], stem.with_suffix(".wav"))
        except MaiaRenderError as exc:
            written["wav_error"] = str(exc)
    return written
