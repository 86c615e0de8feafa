"""Helpers the tests share (imported as `helpers`; pytest puts tests/ on the path): paths, tiny
model shapes, MIDI files the tests write, and a fresh-process runner."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PIANO_MIDI_DE = SHARED / "corpora" / "piano-midi-de"
LACRIMOSA_REFERENCE = SHARED / "reference" / "lacrimosa-orchestral.mid"

needs_piano_midi_de = pytest.mark.skipif(not PIANO_MIDI_DE.exists(), reason=f"{PIANO_MIDI_DE} is not on this machine")


def piano_midi_de_files() -> list[Path]:
    return sorted((PIANO_MIDI_DE / "midis").rglob("*.mid")) if PIANO_MIDI_DE.exists() else []


def make_midi(path: Path, tracks, tpq: int = 480, tempo: float = 100.0, time_signature=(3, 4)) -> Path:
    """Write a MIDI file. ``tracks``: list of (notes, is_drum), notes as (pitch, start, duration, velocity) in ticks."""
    import symusic

    score = symusic.Score(tpq)
    for notes, is_drum in tracks:
        track = symusic.Track("drums" if is_drum else "piano", 0, is_drum)
        if notes:
            a = np.array(notes, dtype=np.int64)
            track.notes = symusic.Note.from_numpy(
                a[:, 1].astype(np.int32), a[:, 2].astype(np.int32), a[:, 0].astype(np.int8), a[:, 3].astype(np.int8)
            )
        score.tracks.append(track)
    score.tempos.append(symusic.Tempo(0, qpm=tempo))
    score.time_signatures.append(symusic.TimeSignature(0, *time_signature))
    score.dump_midi(str(path))
    return path


TINY_GPT = {"n_layer": 2, "n_head": 2, "n_embd": 32, "n_inner": 64, "n_positions": 128}


def run_python(code: str, cwd=None) -> str:
    """Run code in a fresh Python process; return its stdout (fails the test on a non-zero exit)."""
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd or REPO, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


# --------------------------------------------------------------------------------------------
# Tiny MIDI files the tests write themselves, so real-file round trips run on a clean clone
# --------------------------------------------------------------------------------------------

TWO_HANDS = [
    ([(72, 0, 480, 90), (74, 480, 240, 90), (76, 720, 250, 70), (77, 960, 480, 60)], False),
    ([(48, 0, 1440, 50), (48, 0, 960, 40), (55, 480, 960, 50)], False),
]


def _two_hands(path: Path) -> Path:
    return make_midi(path, TWO_HANDS)


def _metre_and_tempo_changes(path: Path) -> Path:
    """Four bars of 3/4 then 6/8, a ritardando, an off-grid note and a held chord."""
    import symusic

    score = symusic.Score(480)
    track = symusic.Track("piano", 0, False)
    notes = [(60 + (i % 12), i * 240, 200, 70) for i in range(24)] + [(48, 0, 2880, 50), (55, 2880, 2880, 50)]
    notes.append((79, 1450, 97, 90))  # off the 12-per-quarter grid
    a = np.array(notes, dtype=np.int64)
    track.notes = symusic.Note.from_numpy(
        a[:, 1].astype(np.int32), a[:, 2].astype(np.int32), a[:, 0].astype(np.int8), a[:, 3].astype(np.int8)
    )
    score.tracks.append(track)
    for time, qpm in ((0, 96.0), (2880, 80.0), (4320, 66.0)):
        score.tempos.append(symusic.Tempo(time, qpm=qpm))
    score.time_signatures.append(symusic.TimeSignature(0, 3, 4))
    score.time_signatures.append(symusic.TimeSignature(2880, 6, 8))
    score.dump_midi(str(path))
    return path


def _drums_only(path: Path) -> Path:
    return make_midi(path, [([(36, 0, 120, 100), (38, 480, 120, 100), (42, 240, 60, 80)], True)])


def _smpte_division(path: Path) -> Path:
    """A valid-looking format-0 file whose header counts time in SMPTE frames (25 fps, 40 ticks a frame)."""
    track = bytes([0x00, 0x90, 60, 80, 0x60, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00])
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + bytes([0xE7, 40])
    path.write_bytes(header + b"MTrk" + len(track).to_bytes(4, "big") + track)
    return path


def _truncated(path: Path) -> Path:
    full = _two_hands(path)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# name -> writer(path) -> path; readable ones round-trip, broken ones must get one clear MaiaInputError
READABLE_MIDI_FIXTURES = {"two-hands": _two_hands, "metre-and-tempo-changes": _metre_and_tempo_changes}
BROKEN_MIDI_FIXTURES = {
    "smpte-division": (_smpte_division, "SMPTE time division"),
    "truncated": (_truncated, "damaged MIDI file|truncated"),
}
DRUMS_ONLY_FIXTURE = _drums_only
