"""Shared fixtures: small scores the tests make, and the shared corpora where this machine has them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

try:  # two busy cores thrash with several threads each
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a dependency, but the codec tests do not need it
    pass

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


@pytest.fixture
def codec():
    from maia_hf.codec import NotewiseCodec

    return NotewiseCodec()


@pytest.fixture(scope="session")
def tokenizer():
    from maia_hf import MaiaTokenizer

    return MaiaTokenizer()


@pytest.fixture
def two_hands_midi(tmp_path) -> Path:
    """A 3/4 piece in two tracks: a melody with an off-grid note and a bass with a doubled note."""
    melody = [(72, 0, 480, 90), (74, 480, 240, 90), (76, 720, 250, 70), (77, 960, 480, 60)]
    bass = [(48, 0, 1440, 50), (48, 0, 960, 40), (55, 480, 960, 50)]
    return make_midi(tmp_path / "two_hands.mid", [(melody, False), (bass, False)])


TINY_GPT = {"n_layer": 2, "n_head": 2, "n_embd": 32, "n_inner": 64, "n_positions": 128}


@pytest.fixture
def tiny_maia_dir(tmp_path, tokenizer):
    """A saved tiny MaiaForCausalLM with its tokenizer (random weights, fixed seed)."""
    import torch

    from maia_hf import MaiaConfig, MaiaForCausalLM

    torch.manual_seed(0)
    model = MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **TINY_GPT))
    path = tmp_path / "tiny-maia"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def run_python(code: str, cwd=None) -> str:
    """Run code in a fresh Python process; return its stdout (fails the test on a non-zero exit)."""
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd or REPO, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout
