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
