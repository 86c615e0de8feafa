"""Evaluation of maia models: one module per measurement, and the run behind ``maia evaluate``.

- :mod:`~maia_hf.evaluation.likelihood`: the negative log-likelihood (:func:`nll_sums`, the one used by
  training too; :func:`likelihood_summary`; :func:`validation_nll` over a corpus split);
- :mod:`~maia_hf.evaluation.corpus`: real excerpts, BLEU references and the training set, from a built corpus;
- :mod:`~maia_hf.evaluation.statistics`: musical statistics of a piece and the overlap of two sets' distributions;
- :mod:`~maia_hf.evaluation.memorisation`: the longest stretch of a piece found verbatim in the training set;
- :mod:`~maia_hf.evaluation.discriminator`: a logistic regression telling real excerpts from generated ones;
- :mod:`~maia_hf.evaluation.run`: :class:`EvaluationConfig` and :func:`evaluate_models`, which measure all of
  the above for saved models;
- :mod:`~maia_hf.evaluation.report` and :mod:`~maia_hf.evaluation.plots`: the Markdown and JSON report, and
  its figures.

``docs/evaluation.md`` explains every number.

Example:

```python
>>> from maia_hf.evaluation import EvaluationConfig, likelihood_summary
>>> EvaluationConfig(pieces=4, bars=2).unconstrained_pieces
4
>>> likelihood_summary(0.0, 10, 2)["perplexity"]
1.0

```
"""

from .corpus import (
    BEATS_PER_BAR,
    EvaluationCorpus,
    Sample,
    cut_excerpt,
    load_evaluation_corpus,
    read_sequences,
    window_table,
)
from .discriminator import discriminator_accuracy, excerpt_features, fit_logistic_regression
from .likelihood import likelihood_summary, nll_sums, validation_nll
from .memorisation import PieceCopy, copied_spans, grid_lengths, longest_matches, memorisation_report, transpose_words
from .plots import plot_ngram_strip, plot_statistics
from .report import report_markdown, write_report
from .run import EvaluationConfig, describe_samples, evaluate_models, generate_samples, well_formedness
from .statistics import (
    HISTOGRAMS,
    INTERVAL_RANGE,
    NOTE_LENGTH_BINS,
    NOTE_LENGTH_LABELS,
    STATISTICS,
    distribution_overlap,
    empty_beat_rate,
    gaussian_kde,
    groove_consistency,
    interval_histogram,
    kl_divergence,
    note_length_histogram,
    overlap_area,
    pairwise_distances,
    piece_histograms,
    piece_statistics,
    pitch_class_entropy,
    pitch_range,
    polyphony,
    scale_consistency,
    top_line,
)

__all__ = [
    "BEATS_PER_BAR",
    "HISTOGRAMS",
    "INTERVAL_RANGE",
    "NOTE_LENGTH_BINS",
    "NOTE_LENGTH_LABELS",
    "STATISTICS",
    "EvaluationConfig",
    "EvaluationCorpus",
    "PieceCopy",
    "Sample",
    "copied_spans",
    "cut_excerpt",
    "describe_samples",
    "discriminator_accuracy",
    "distribution_overlap",
    "empty_beat_rate",
    "evaluate_models",
    "excerpt_features",
    "fit_logistic_regression",
    "gaussian_kde",
    "generate_samples",
    "grid_lengths",
    "groove_consistency",
    "interval_histogram",
    "kl_divergence",
    "likelihood_summary",
    "load_evaluation_corpus",
    "longest_matches",
    "memorisation_report",
    "nll_sums",
    "note_length_histogram",
    "overlap_area",
    "pairwise_distances",
    "piece_histograms",
    "piece_statistics",
    "pitch_class_entropy",
    "pitch_range",
    "plot_ngram_strip",
    "plot_statistics",
    "polyphony",
    "read_sequences",
    "report_markdown",
    "scale_consistency",
    "top_line",
    "transpose_words",
    "validation_nll",
    "well_formedness",
    "window_table",
    "write_report",
]
