"""Musical statistics of a piece in the manner of MusPy, and the overlap of two sets' distributions.

Pure numpy, on the codec's :class:`~maia_hf.codec.NoteArray` (times in grid steps). The statistics
follow MusPy's definitions (Dong et al., 2020), restated here for one piano part on maia's grid:

- **pitch range**: highest minus lowest pitch, in semitones.
- **pitch-class entropy**: Shannon entropy (bits) of the notes' pitch classes, counted per note:
  0 for one pitch class, log2(12) = 3.585 when all twelve are equally common.
- **scale consistency**: the largest share of notes that fall in one major (equivalently, natural
  minor) scale, over the 12 of them: 1.0 for diatonic music.
- **polyphony**: the mean number of notes sounding, over the time steps where at least one sounds.
- **empty-beat rate**: the share of beats (quarter notes from step 0 to the end) in which no note sounds.
- **groove consistency** (Wu and Yang, 2020): 1 minus the mean Hamming distance between the onset
  patterns (one flag per step) of consecutive bars, over the steps of a bar: 1.0 when every bar has
  the same rhythm. Needs two bars.
- **note-length histogram**: the share of notes in each class of lengths (:data:`NOTE_LENGTH_BINS`).
- **interval histogram**: the share of each melodic interval of the top line (at each onset, the highest
  note sounding; a note held on counts once), -12..+12 semitones, wider ones in the end bins.

:func:`distribution_overlap` compares a feature over two sets of pieces as Yang and Lerch (2018) do:
the distances between every pair of real pieces (intra-set) against the distances between every
real and every generated piece (inter-set), each smoothed by a Gaussian kernel density estimate, and
their overlapping area (1: the generated pieces sit among the real ones as the real ones sit among
themselves; 0: they are apart) and Kullback-Leibler divergence.

Example:

```python
>>> from maia_hf.codec import NoteArray
>>> from maia_hf.evaluation.statistics import piece_statistics
>>> notes = NoteArray.from_lists(pitch=[60, 64, 67, 72], start=[0, 0, 0, 12], end=[12, 12, 12, 24])
>>> stats = piece_statistics(notes)
>>> stats["pitch_range"], stats["polyphony"], stats["scale_consistency"]
(12.0, 2.0, 1.0)

```
"""

from __future__ import annotations

import math

import numpy as np

from ..codec import NoteArray

__all__ = [
    "HISTOGRAMS",
    "INTERVAL_RANGE",
    "NOTE_LENGTH_BINS",
    "NOTE_LENGTH_LABELS",
    "STATISTICS",
    "distribution_overlap",
    "empty_beat_rate",
    "gaussian_kde",
    "groove_consistency",
    "interval_histogram",
    "kl_divergence",
    "note_length_histogram",
    "overlap_area",
    "pairwise_distances",
    "piece_histograms",
    "piece_statistics",
    "pitch_class_entropy",
    "pitch_range",
    "polyphony",
    "scale_consistency",
    "top_line",
]

STATISTICS = (
    "pitch_range",
    "pitch_class_entropy",
    "scale_consistency",
    "polyphony",
    "empty_beat_rate",
    "groove_consistency",
)
HISTOGRAMS = ("note_length", "interval")

# Lower edges of the note-length classes, in steps at 12 steps per quarter (scaled for other grids).
NOTE_LENGTH_BINS = (1, 3, 4, 5, 7, 10, 13, 19, 25, 37, 49)
# Their labels, in steps at 12 a quarter: 3 a 16th, 4 an 8th triplet, 6 an 8th, 12 a quarter, 48 a whole note.
NOTE_LENGTH_LABELS = ("1-2", "3", "4", "5-6", "7-9", "10-12", "13-18", "19-24", "25-36", "37-48", ">48")
INTERVAL_RANGE = 12  # the interval histogram has bins -12..+12; wider intervals go to the end bins
_MAJOR_SCALE = np.array([0, 2, 4, 5, 7, 9, 11])
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


def pitch_range(notes: NoteArray) -> float:
    """Highest minus lowest pitch, in semitones (NaN for no notes)."""
    return float(notes.pitch.max() - notes.pitch.min()) if len(notes) else math.nan


def pitch_class_entropy(notes: NoteArray) -> float:
    """Entropy in bits of the pitch classes of the notes, counted per note (NaN for no notes).

    >>> pitch_class_entropy(NoteArray.from_lists([60, 62, 72, 74], [0, 1, 2, 3], [1, 2, 3, 4]))  # C, D equally
    1.0
    """
    if not len(notes):
        return math.nan
    counts = np.bincount(notes.pitch % 12, minlength=12)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0: no -0.0


def scale_consistency(notes: NoteArray) -> float:
    """The largest share of notes inside one of the 12 major scales (NaN for no notes).

    A natural minor scale holds the pitch classes of its relative major, so it adds no other set.
    """
    if not len(notes):
        return math.nan
    counts = np.bincount(notes.pitch % 12, minlength=12)
    in_scale = [counts[(_MAJOR_SCALE + root) % 12].sum() for root in range(12)]
    return float(max(in_scale) / counts.sum())


def _sounding_per_step(notes: NoteArray, length: int) -> np.ndarray:
    change = np.zeros(length + 1, dtype=np.int64)
    np.add.at(change, np.clip(notes.start, 0, length), 1)
    np.add.at(change, np.clip(notes.end, 0, length), -1)
    return np.cumsum(change)[:length]


def polyphony(notes: NoteArray) -> float:
    """Mean number of notes sounding over the steps where at least one sounds (NaN for no notes).

    >>> polyphony(NoteArray.from_lists([60, 64], [0, 0], [12, 6]))  # 6 steps with two notes, 6 with one
    1.5
    """
    if not len(notes):
        return math.nan
    sounding = _sounding_per_step(notes, int(notes.end.max()))
    return float(sounding[sounding > 0].mean())


def empty_beat_rate(notes: NoteArray, steps_per_beat: int = 12, length: int | None = None) -> float:
    """Share of beats in which no note sounds, over the beats from step 0 to ``length`` (default: the last offset).

    >>> empty_beat_rate(NoteArray.from_lists([60], [0], [12]), length=48)  # one beat of four sounds
    0.75
    """
    length = int(notes.end.max()) if length is None and len(notes) else (length or 0)
    n_beats = -(-length // steps_per_beat)
    if n_beats == 0:
        return math.nan
    sounding = _sounding_per_step(notes, n_beats * steps_per_beat).reshape(n_beats, steps_per_beat)
    return float((sounding.max(axis=1) == 0).mean())


def groove_consistency(notes: NoteArray, steps_per_bar: int = 48, length: int | None = None) -> float:
    """1 minus the mean Hamming distance of the onset patterns of consecutive bars (NaN under two bars).

    >>> notes = NoteArray.from_lists([60, 62, 64], [0, 48, 60], [12, 60, 72])  # bar 2 adds an onset
    >>> round(groove_consistency(notes), 4)  # 1 - 1/48
    0.9792
    """
    length = int(notes.end.max()) if length is None and len(notes) else (length or 0)
    n_bars = -(-length // steps_per_bar)
    if n_bars < 2:
        return math.nan
    patterns = np.zeros((n_bars, steps_per_bar), dtype=bool)
    starts = notes.start[notes.start < n_bars * steps_per_bar]
    patterns[starts // steps_per_bar, starts % steps_per_bar] = True
    return float(1 - (patterns[1:] != patterns[:-1]).sum() / (steps_per_bar * (n_bars - 1)))


def note_length_histogram(notes: NoteArray, steps_per_quarter: int = 12) -> np.ndarray:
    """Share of notes in each class of :data:`NOTE_LENGTH_BINS` (zeros for no notes).

    >>> note_length_histogram(NoteArray.from_lists([60, 62, 64, 65], [0, 3, 6, 12], [3, 6, 12, 61])).tolist()
    [0.0, 0.5, 0.0, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25]
    """
    edges = np.array(NOTE_LENGTH_BINS, dtype=np.float64) * steps_per_quarter / 12
    bins = np.searchsorted(edges, notes.end - notes.start, side="right") - 1
    counts = np.bincount(np.clip(bins, 0, len(edges) - 1), minlength=len(edges)).astype(np.float64)
    return counts / counts.sum() if counts.sum() else counts


def top_line(notes: NoteArray, block: int = 256) -> np.ndarray:
    """The top line (the skyline): at each onset time, the highest note sounding; a note held on is listed once.

    Returns the pitches, in time order.

    >>> top_line(NoteArray.from_lists([72, 60, 62, 74], [0, 0, 12, 24], [24, 12, 24, 36])).tolist()  # 72 held over 62
    [72, 74]
    """
    if not len(notes):
        return np.zeros(0, dtype=np.int64)
    times = np.unique(notes.start)
    top = []
    for i in range(0, len(times), block):  # (block, notes) at a time
        t = times[i : i + block, None]
        sounding = (notes.start[None, :] <= t) & (notes.end[None, :] > t)
        top.append(np.where(sounding, notes.pitch[None, :], -1).argmax(axis=1))
    index = np.concatenate(top)
    index = index[np.concatenate([[True], index[1:] != index[:-1]])]
    return notes.pitch[index]


def interval_histogram(notes: NoteArray) -> np.ndarray:
    """Share of each melodic interval of the top line (:func:`top_line`), bins -12..+12 (wider in the end bins).

    >>> h = interval_histogram(NoteArray.from_lists([60, 64, 67, 72], [0, 0, 12, 24], [12, 12, 24, 36]))
    >>> {i - 12: share for i, share in enumerate(h.tolist()) if share}  # 64 -> 67 -> 72
    {3: 0.5, 5: 0.5}
    """
    bins = 2 * INTERVAL_RANGE + 1
    steps = np.clip(np.diff(top_line(notes)), -INTERVAL_RANGE, INTERVAL_RANGE) + INTERVAL_RANGE
    counts = np.bincount(steps, minlength=bins).astype(np.float64)
    return counts / counts.sum() if counts.sum() else counts


def piece_statistics(
    notes: NoteArray, steps_per_quarter: int = 12, beats_per_bar: int = 4, length: int | None = None
) -> dict[str, float]:
    """Every scalar statistic of :data:`STATISTICS` for one piece (NaN where it is undefined).

    Args:
        notes (`NoteArray`): the piece, times in steps from its start.
        steps_per_quarter (`int`, *optional*, defaults to 12): the grid; a beat is a quarter note.
        beats_per_bar (`int`, *optional*, defaults to 4): bar length for groove consistency.
        length (`int`, *optional*): the piece's length in steps (default: its last offset), so that a
            closing rest counts in the empty-beat rate.
    """
    return {
        "pitch_range": pitch_range(notes),
        "pitch_class_entropy": pitch_class_entropy(notes),
        "scale_consistency": scale_consistency(notes),
        "polyphony": polyphony(notes),
        "empty_beat_rate": empty_beat_rate(notes, steps_per_quarter, length),
        "groove_consistency": groove_consistency(notes, steps_per_quarter * beats_per_bar, length),
    }


def piece_histograms(notes: NoteArray, steps_per_quarter: int = 12) -> dict[str, np.ndarray]:
    """The histograms of :data:`HISTOGRAMS` for one piece."""
    return {
        "note_length": note_length_histogram(notes, steps_per_quarter),
        "interval": interval_histogram(notes),
    }


# --------------------------------------------------------------------------------------------
# Overlap of distributions (Yang and Lerch, 2018)
# --------------------------------------------------------------------------------------------


def _bandwidth(samples: np.ndarray) -> float:
    """Scott's rule as in scipy's gaussian_kde: the sample standard deviation times n^(-1/5)."""
    if len(samples) < 2:
        return 0.0
    return float(samples.std(ddof=1) * len(samples) ** (-1 / 5))


def gaussian_kde(samples, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """Density on ``grid`` of a Gaussian kernel of width ``bandwidth`` on every sample."""
    samples = np.asarray(samples, dtype=np.float64)
    z = (grid[:, None] - samples[None, :]) / bandwidth
    return np.exp(-0.5 * z**2).sum(axis=1) / (len(samples) * bandwidth * math.sqrt(2 * math.pi))


def _densities(a, b, bandwidth: float | None, grid_size: int):
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not len(a) or not len(b):
        return None
    both = np.concatenate([a, b])
    span = float(both.max() - both.min())
    if span == 0:
        return "same"
    # Each set has its own Scott bandwidth, floored so that the grid resolves every kernel.
    floor = span / 200
    h_a = bandwidth or max(_bandwidth(a), floor)
    h_b = bandwidth or max(_bandwidth(b), floor)
    reach = 6 * max(h_a, h_b)
    grid = np.linspace(both.min() - reach, both.max() + reach, grid_size)
    return grid, gaussian_kde(a, grid, h_a), gaussian_kde(b, grid, h_b)


def overlap_area(a, b, bandwidth: float | None = None, grid_size: int = 4096) -> float:
    """Overlapping area of the kernel density estimates of two samples: the integral of min(f_a, f_b).

    1.0 for identical distributions, 0.0 for disjoint ones; NaN when a sample is empty (NaNs are dropped).

    Args:
        a, b: the samples.
        bandwidth (`float`, *optional*): kernel width for both; default Scott's rule for each sample.
        grid_size (`int`, *optional*, defaults to 4096): points of the integration grid.

    >>> round(overlap_area([0.0], [2.0], bandwidth=1.0), 4)  # two unit normals 2 apart: 2 * Phi(-1)
    0.3173
    """
    densities = _densities(a, b, bandwidth, grid_size)
    if densities is None:
        return math.nan
    if isinstance(densities, str):
        return 1.0
    grid, f, g = densities
    return float(min(1.0, _trapezoid(np.minimum(f, g), grid)))


def kl_divergence(a, b, bandwidth: float | None = None, grid_size: int = 4096) -> float:
    """KL(a || b) in nats between the kernel density estimates of two samples (0 for identical ones).

    >>> round(kl_divergence([0.0], [1.0], bandwidth=1.0), 4)  # two unit normals 1 apart: 1/2
    0.5
    """
    densities = _densities(a, b, bandwidth, grid_size)
    if densities is None:
        return math.nan
    if isinstance(densities, str):
        return 0.0
    grid, f, g = densities
    tiny = 1e-300
    integrand = np.where(f > tiny, f * (np.log(np.maximum(f, tiny)) - np.log(np.maximum(g, tiny))), 0.0)
    return float(max(0.0, _trapezoid(integrand, grid)))


def pairwise_distances(x, y=None) -> np.ndarray:
    """Euclidean distances between the rows of ``x`` and ``y`` (scalars are rows of one value);
    without ``y``, between every pair of distinct rows of ``x``. Rows with a NaN are dropped.

    >>> pairwise_distances([0.0, 1.0, 3.0]).tolist(), pairwise_distances([0.0], [1.0, 3.0]).tolist()
    ([1.0, 3.0, 2.0], [1.0, 3.0])
    """
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(len(x), -1)
    x = x[np.isfinite(x).all(axis=1)]
    if y is None:
        i, j = np.triu_indices(len(x), k=1)
        return np.linalg.norm(x[i] - x[j], axis=1)
    y = np.asarray(y, dtype=np.float64)
    y = y.reshape(len(y), -1)
    y = y[np.isfinite(y).all(axis=1)]
    return np.linalg.norm(x[:, None, :] - y[None, :, :], axis=2).ravel()


def distribution_overlap(real, generated) -> dict[str, float]:
    """Yang and Lerch's comparison of one feature over real and generated pieces.

    Args:
        real, generated: the feature of each piece: one value (a statistic) or one vector (a histogram) each.

    Returns:
        `dict` with ``overlap`` (overlapping area of the intra-set distances of the real pieces and the
        inter-set distances real-generated, 0..1, higher is closer) and ``kl_divergence`` (KL of the
        intra-set from the inter-set distribution, nats, lower is closer); NaN where there are too few pieces.
    """
    intra = pairwise_distances(real)
    inter = pairwise_distances(real, generated)
    if len(intra) < 1 or len(inter) < 1:
        return {"overlap": math.nan, "kl_divergence": math.nan}
    return {"overlap": overlap_area(intra, inter), "kl_divergence": kl_divergence(intra, inter)}
