"""The report's figures: the cumulated n-gram strip plot and the musical statistics per piece.

Both read the report's dictionary (:func:`maia_hf.evaluation.evaluate_models`), real music first, then
each model in its own colour.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..plotting import pyplot
from .statistics import HISTOGRAMS, INTERVAL_RANGE, NOTE_LENGTH_LABELS, STATISTICS

__all__ = ["LABELS", "REAL", "plot_ngram_strip", "plot_statistics"]

REAL = "real"  # the report's name for the held-out excerpts
LABELS = {
    "pitch_range": "pitch range (semitones)",
    "pitch_class_entropy": "pitch-class entropy (bits)",
    "scale_consistency": "scale consistency",
    "polyphony": "polyphony (notes)",
    "empty_beat_rate": "empty-beat rate",
    "groove_consistency": "groove consistency",
    "note_length": "note-length histogram",
    "interval": "interval histogram",
}


def _sources(report: dict) -> list[tuple[str, dict, str]]:
    """(name, entry, colour) of real music, then of each model."""
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]
    models = [(name, m, colours[i % len(colours)]) for i, (name, m) in enumerate(report["models"].items())]
    return [(f"{REAL} (held out)", report["real"], "black")] + models


def _strip(ax, position: float, values, colour: str, rng, width: float = 0.12, label=None) -> None:
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if not len(values):
        return
    ax.scatter(position + rng.uniform(-width, width, len(values)), values, s=14, alpha=0.6, color=colour, label=label)
    ax.hlines(np.median(values), position - 1.6 * width, position + 1.6 * width, color=colour, linewidth=2)


def plot_ngram_strip(report: dict, path) -> Path:
    """The cumulated n-gram strip plot: each piece's cumulative BLEU-2..5 (dots; bars: medians), per source."""
    plt = pyplot()
    sources = _sources(report)
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(9, 5))
    spread = 0.8 / len(sources)
    for i, (name, entry, colour) in enumerate(sources):
        for j, n in enumerate(sorted(entry["cumulative_bleu"], key=int)):
            offset = j + (i - (len(sources) - 1) / 2) * spread
            _strip(ax, offset, entry["cumulative_bleu"][n], colour, rng, spread / 3, name if j == 0 else None)
    orders = sorted(report["real"]["cumulative_bleu"], key=int)
    ax.set_xticks(range(len(orders)), [f"BLEU-{n} (1..{n}-grams)" for n in orders])
    ax.set_ylabel("cumulative BLEU of each piece")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("Cumulated n-gram precision against the training pieces")
    ax.legend(loc="lower left", fontsize="small")
    return _save(fig, plt, path)


def plot_statistics(report: dict, path) -> Path:
    """Each statistic per piece (strips) for real music and each model, and the mean histograms."""
    plt = pyplot()
    sources = _sources(report)
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.5))
    for ax, stat in zip(axes.flat, STATISTICS, strict=False):
        for i, (name, entry, colour) in enumerate(sources):
            _strip(ax, i, entry["statistics_per_piece"][stat], colour, rng, label=name)
        ax.set_xticks(range(len(sources)), [name for name, _, _ in sources], rotation=20, fontsize="small")
        ax.set_title(LABELS[stat])
    bins = {
        "note_length": list(NOTE_LENGTH_LABELS),
        "interval": [str(i) for i in range(-INTERVAL_RANGE, INTERVAL_RANGE + 1)],
    }
    for ax, hist in zip(axes.flat[len(STATISTICS) :], HISTOGRAMS, strict=False):
        for name, entry, colour in sources:
            ax.plot(range(len(bins[hist])), entry["histograms"][hist], marker="o", ms=3, color=colour, label=name)
        step = 1 if hist == "note_length" else 4
        rotation = 45 if hist == "note_length" else 0
        ax.set_xticks(range(0, len(bins[hist]), step), bins[hist][::step], fontsize="small", rotation=rotation)
        ax.set_xlabel("steps (12 = a quarter note)" if hist == "note_length" else "semitones (ends: wider too)")
        ax.set_ylabel("share")
        ax.set_title(f"{LABELS[hist]} (mean of pieces)")
        ax.legend(fontsize="x-small")
    fig.tight_layout()
    return _save(fig, plt, path)


def _save(fig, plt, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
