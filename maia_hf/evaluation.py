"""Evaluate maia models against a corpus: the job behind ``maia evaluate``.

For each model directory and one corpus built by :func:`maia_hf.data.build_dataset`,
:func:`evaluate_models` measures (``docs/evaluation.md`` explains every number):

1. **likelihood**: the negative log-likelihood of the validation windows, in nats and bits per token and
   in bits per note, each token scored once with the context of the window it is new in;
2. **BLEU** (maia's weights, :mod:`maia_hf.metrics`) of generated pieces against the training pieces,
   beside the BLEU of real held-out excerpts of the same length against the same references;
3. **musical statistics** (:mod:`maia_hf.music_statistics`) of generated and real excerpts, and the
   overlap of their distributions (Yang and Lerch, 2018);
4. **memorisation** (:mod:`maia_hf.memorisation`): each piece's longest n-gram found in the training
   set, and the share of pieces that copy two bars or more verbatim (in any key);
5. **well-formedness before constraints**: pieces sampled with the constraints off, and the repairs the
   decoder had to make (note-offs of silent pitches, notes never closed, re-strikes of sounding pitches);
6. **a discriminator**: a logistic regression trained to tell real excerpts from generated ones; its
   held-out accuracy (50%: it cannot tell them apart).

The corpus keeps no time signatures, so a bar here is four quarter notes (48 steps at 12 a quarter).
:mod:`maia_hf.evaluation_corpus` reads the real music and the references from the corpus;
:mod:`maia_hf.evaluation_report` writes the Markdown report and the figures.

Example:

```python
>>> from maia_hf.evaluation import EvaluationConfig
>>> EvaluationConfig(pieces=4, bars=2).unconstrained_pieces
4

```
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .codec import NotewiseCodec
from .discriminator import discriminator_accuracy
from .errors import MaiaInputError
from .evaluation_corpus import BEATS_PER_BAR, EvaluationCorpus, Sample, load_evaluation_corpus, window_table
from .memorisation import memorisation_report
from .metrics import bleu_from_matches, count_matches, cumulative_bleu
from .music_statistics import (
    HISTOGRAMS,
    STATISTICS,
    distribution_overlap,
    piece_histograms,
    piece_statistics,
)

__all__ = [
    "EvaluationConfig",
    "Sample",
    "describe_samples",
    "evaluate_models",
    "excerpt_features",
    "validation_nll",
]

CUMULATIVE_ORDERS = (2, 3, 4, 5)
_REPAIRS = ("ignored_note_offs", "closed_at_end", "restruck")  # what codec.decode counts


@dataclass
class EvaluationConfig:
    """What :func:`evaluate_models` generates and measures.

    Args:
        pieces (`int`, *optional*, defaults to 20): pieces generated per model, and real excerpts.
        bars (`int`, *optional*, defaults to 8): length of each generated piece and real excerpt (4/4 bars).
        top_k (`int`, *optional*, defaults to 5), temperature (`float`, *optional*, defaults to 1.0): sampling.
        seed (`int`, *optional*, defaults to 0): makes generation, excerpts and the discriminator's folds reproducible.
        unconstrained_pieces (`int`, *optional*): pieces sampled without constraints (default: ``pieces``).
        nll_windows (`int`, *optional*, defaults to 256): validation windows scored (0: all).
        batch_size (`int`, *optional*, defaults to 8): windows per forward pass.
        max_reference_words (`int`, *optional*, defaults to 2,000,000): training sequences (all keys, in
            random order) are BLEU references until they hold this many words (0: all).
        copy_bars (`float`, *optional*, defaults to 2.0): a piece copying this many bars verbatim counts as a copy.
        folds (`int`, *optional*, defaults to 5): cross-validation folds of the discriminator.
        tokens_per_bar (`int`, *optional*, defaults to 160): token budget of a generated bar (constrained
            pieces close their notes within it; unconstrained ones write exactly this many unless they end).
    """

    pieces: int = 20
    bars: int = 8
    top_k: int = 5
    temperature: float = 1.0
    seed: int = 0
    unconstrained_pieces: int | None = None
    nll_windows: int = 256
    batch_size: int = 8
    max_reference_words: int = 2_000_000
    copy_bars: float = 2.0
    folds: int = 5
    tokens_per_bar: int = 160

    def __post_init__(self):
        if self.unconstrained_pieces is None:
            self.unconstrained_pieces = self.pieces
        if self.pieces < 1 or self.bars < 1:
            raise MaiaInputError(f"pieces and bars must be >= 1, got {self.pieces} and {self.bars}")


# --------------------------------------------------------------------------------------------
# Likelihood
# --------------------------------------------------------------------------------------------


def _scoring_plan(split, max_windows: int) -> list[tuple[int, int]]:
    """(row, first new position) of the windows to score: each token is scored in the window where it is new."""
    _, frame = window_table(split)
    frame = frame.sort_values(["piece_id", "transpose", "window_start"], kind="stable")
    plan, previous_end, previous_key = [], 0, None
    columns = (frame.index, frame["piece_id"], frame["transpose"], frame["window_start"], frame["length"])
    for row, piece, key, start, length in zip(*columns, strict=True):
        if (piece, key) != previous_key:
            previous_end, previous_key = 0, (piece, key)
        plan.append((int(row), max(1, previous_end - int(start))))
        previous_end = int(start) + int(length)
    if max_windows and len(plan) > max_windows:
        plan = [plan[i] for i in np.linspace(0, len(plan) - 1, max_windows).round().astype(int)]
    return plan


def _chunks(ids: list[int], first: int, limit: int) -> list[tuple[list[int], int]]:
    """A window cut to the model's positions: (chunk, first scored position), chunks overlapping by half.

    >>> _chunks(list(range(10)), 1, 4)
    [([0, 1, 2, 3], 1), ([2, 3, 4, 5], 2), ([4, 5, 6, 7], 2), ([6, 7, 8, 9], 2)]
    """
    if len(ids) <= limit:
        return [(ids, first)] if first < len(ids) else []
    out, step = [], max(1, limit // 2)
    for begin in range(0, len(ids) - limit + step, step):
        begin = min(begin, len(ids) - limit)
        scored_from = max(first - begin, 1, (out[-1][2] if out else 0) - begin)
        if scored_from < limit:
            out.append((ids[begin : begin + limit], scored_from, begin + limit))
    return [(chunk, scored_from) for chunk, scored_from, _ in out]


def validation_nll(model, tokenizer, split, max_windows: int = 256, batch_size: int = 8) -> dict:
    """Negative log-likelihood of a split's windows: nats and bits per token, bits per note.

    Every token after a sequence's first is scored once, in the window where it is new (so it has the
    overlap of the windows as context); ``max_windows`` evenly spaced windows are scored (0: all).
    Windows longer than the model's positions are scored in chunks that overlap by half.

    Returns:
        `dict`: ``windows``, ``tokens``, ``notes`` (note-on tokens scored), ``nats_per_token``,
        ``bits_per_token``, ``bits_per_note``, ``perplexity``.
    """
    import torch

    plan = _scoring_plan(split, max_windows)
    limit = getattr(model.config, "n_positions", None) or 10**9
    on_lo = tokenizer.codec_offset + tokenizer.codec.on_offset
    on_hi = on_lo + tokenizer.codec.n_pitches
    rows = split.select([row for row, _ in plan])["input_ids"]
    by_length: dict[int, list[tuple[list[int], int]]] = {}
    for ids, (_, first) in zip(rows, plan, strict=True):
        for chunk, scored_from in _chunks(list(ids), first, limit):
            by_length.setdefault(len(chunk), []).append((chunk, scored_from))
    total_nats, tokens, notes = 0.0, 0, 0
    for chunks in by_length.values():
        for i in range(0, len(chunks), batch_size):
            batch = chunks[i : i + batch_size]
            ids = torch.tensor([c for c, _ in batch], dtype=torch.long, device=model.device)  # (B, T)
            with torch.inference_mode():
                logits = model(input_ids=ids).logits.float()  # (B, T, V)
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]  # (B, T-1)
            scored = (
                torch.arange(ids.shape[1] - 1, device=ids.device)[None, :]
                >= torch.tensor([s - 1 for _, s in batch], device=ids.device)[:, None]
            )  # (B, T-1): target position >= first scored position
            targets = ids[:, 1:][scored]
            total_nats -= float(logp[scored].sum())
            tokens += int(scored.sum())
            notes += int(((targets >= on_lo) & (targets < on_hi)).sum())
    nats = total_nats / tokens if tokens else math.nan
    return {
        "windows": len(plan),
        "tokens": tokens,
        "notes": notes,
        "nats_per_token": nats,
        "bits_per_token": nats / math.log(2),
        "bits_per_note": total_nats / math.log(2) / notes if notes else math.nan,
        "perplexity": math.exp(nats) if tokens else math.nan,
    }


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def generate_samples(model, tokenizer, composers: list[str], config: EvaluationConfig, constrained: bool = True):
    """Sample pieces of ``config.bars`` bars from nothing but ``<start> <composer:..>``, one seed each.

    Returns:
        `(list[Sample], dict)`: the pieces, and totals over them: ``tokens``, ``seconds``,
        ``interventions`` and ``steps`` (constrained), ``ignored_note_offs``, ``closed_at_end``,
        ``restruck`` (the decoder's repairs), ``skipped_specials`` (special tokens inside the music, which
        the decoder skips) and ``pieces_with_repairs``.
    """
    from .generation import continue_piece

    count = config.pieces if constrained else config.unconstrained_pieces
    known = set(tokenizer.composers)
    length = config.bars * BEATS_PER_BAR * tokenizer.codec.config.steps_per_quarter
    samples = []
    totals = dict.fromkeys(("tokens", "seconds", "interventions", "steps", *_REPAIRS, "pieces_with_repairs"), 0)
    totals["skipped_specials"] = 0
    for i in range(count):
        composer = composers[i % len(composers)] if composers else "unknown"
        composer = composer if composer in known else "unknown"
        seed = config.seed + i + (0 if constrained else 100_000)
        (c,) = continue_piece(
            model, tokenizer, None, composer=composer, bars=config.bars, top_k=config.top_k, seed=seed,
            max_new_tokens=config.tokens_per_bar * config.bars, temperature=config.temperature,
            constrained=constrained, progress=False,
        )  # fmt: skip
        words = tokenizer.codec.words_to_indices(c.words) if c.words else np.zeros(0, dtype=np.int64)
        notes = c.continuation.notes
        samples.append(Sample(words, notes, max(length, int(notes.end.max(initial=0))), composer, f"seed {seed}"))
        for key in _REPAIRS:
            totals[key] += c.stats[key]
        skipped = c.tokens - len(words)  # <start>, composer or <unk> tokens inside the music
        totals["skipped_specials"] += skipped
        totals["pieces_with_repairs"] += skipped > 0 or any(c.stats[key] for key in _REPAIRS)
        totals["tokens"] += c.tokens
        totals["seconds"] += c.seconds
        totals["interventions"] += c.interventions
        totals["steps"] += c.steps
    return samples, totals


def well_formedness(totals: dict, pieces: int) -> dict:
    """Repair rates of unconstrained samples: per 1,000 tokens, and the share of pieces needing any."""
    tokens = totals["tokens"]
    kinds = (*_REPAIRS, "skipped_specials")
    per_k = (lambda n: 1000 * n / tokens) if tokens else (lambda n: math.nan)
    return {
        "pieces": pieces,
        "tokens": tokens,
        **{kind: totals[kind] for kind in kinds},
        "repairs_per_1000_tokens": per_k(sum(totals[kind] for kind in kinds)),
        **{f"{kind}_per_1000_tokens": per_k(totals[kind]) for kind in kinds},
        "share_of_pieces_with_repairs": totals["pieces_with_repairs"] / pieces if pieces else math.nan,
    }


# --------------------------------------------------------------------------------------------
# BLEU, statistics, memorisation
# --------------------------------------------------------------------------------------------


def bleu_section(samples: list[Sample], references: list[np.ndarray]) -> tuple[dict, dict[int, list[float]]]:
    """maia's BLEU of the samples against the references, and each sample's cumulative BLEU-2..5."""
    matches = count_matches([s.words for s in samples], references)
    cumulative = {n: cumulative_bleu(matches, n).tolist() for n in CUMULATIVE_ORDERS}
    return bleu_from_matches(matches), cumulative


def statistics_section(samples: list[Sample], steps_per_quarter: int) -> tuple[dict, dict]:
    """Each sample's statistics (lists per statistic) and histograms (arrays per histogram)."""
    stats = [piece_statistics(s.notes, steps_per_quarter, BEATS_PER_BAR, s.length) for s in samples]
    hists = [piece_histograms(s.notes, steps_per_quarter) for s in samples]
    values = {name: [row[name] for row in stats] for name in STATISTICS}
    histograms = {name: np.array([h[name] for h in hists]) for name in HISTOGRAMS}
    return values, histograms


def _summary(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return {"mean": float(v.mean()) if len(v) else math.nan, "std": float(v.std()) if len(v) else math.nan}


def overlap_section(real_values, real_hists, values, hists) -> dict:
    """Yang and Lerch's overlap and KL divergence of every statistic and histogram, generated against real."""
    out = {name: distribution_overlap(real_values[name], values[name]) for name in STATISTICS}
    out.update({name: distribution_overlap(real_hists[name], hists[name]) for name in HISTOGRAMS})
    return out


def memorisation_section(samples: list[Sample], memory: list[np.ndarray], codec: NotewiseCodec, config) -> dict:
    """Longest n-gram found in the training set, longest copied span, and the share of pieces copying
    ``config.copy_bars`` bars or more (a copy in any key counts)."""
    bar = BEATS_PER_BAR * codec.config.steps_per_quarter
    copies = memorisation_report([s.words for s in samples], memory, codec)
    longest = np.array([c.longest_ngram for c in copies])
    spans = np.array([c.longest_span_steps for c in copies]) / bar
    return {
        "longest_ngram_median": float(np.median(longest)) if len(longest) else math.nan,
        "longest_ngram_max": int(longest.max(initial=0)),
        "longest_copy_bars_median": float(np.median(spans)) if len(spans) else math.nan,
        "longest_copy_bars_max": float(spans.max(initial=0)),
        "share_copying": float(np.mean(spans >= config.copy_bars)) if len(spans) else math.nan,
        "copy_bars": config.copy_bars,
        "per_piece": [
            {"longest_ngram": int(n), "longest_copy_bars": float(b)} for n, b in zip(longest, spans, strict=True)
        ],
    }


# --------------------------------------------------------------------------------------------
# The discriminator
# --------------------------------------------------------------------------------------------

_BIGRAM_BUCKETS = 256


def excerpt_features(sample: Sample, codec: NotewiseCodec) -> np.ndarray:
    """What the discriminator sees of an excerpt: its statistics, histograms, word and hashed word-pair frequencies."""
    spq = codec.config.steps_per_quarter
    stats = piece_statistics(sample.notes, spq, BEATS_PER_BAR, sample.length)
    hists = piece_histograms(sample.notes, spq)
    words = np.asarray(sample.words, dtype=np.int64)
    unigrams = np.bincount(words, minlength=codec.size)[: codec.size].astype(np.float64)
    pairs = (words[:-1] * 7919 + words[1:]) % _BIGRAM_BUCKETS if len(words) > 1 else np.zeros(0, dtype=np.int64)
    bigrams = np.bincount(pairs, minlength=_BIGRAM_BUCKETS).astype(np.float64)
    return np.concatenate(
        [
            [stats[name] for name in STATISTICS],
            *(hists[name] for name in HISTOGRAMS),
            unigrams / max(1, len(words)),
            bigrams / max(1, len(words) - 1),
        ]
    )


# --------------------------------------------------------------------------------------------
# The whole evaluation
# --------------------------------------------------------------------------------------------


def _model_names(model_dirs) -> list[str]:
    names = []
    for d in model_dirs:
        name = Path(d).name or str(d)
        names.append(name if name not in names else f"{name}-{len(names) + 1}")
    return names


def _log(progress: bool, text: str) -> None:
    if progress:
        print(f"maia evaluate: {text}", flush=True)


def describe_samples(samples: list[Sample], corpus: EvaluationCorpus, codec: NotewiseCodec, config: EvaluationConfig):
    """What is measured of any set of excerpts, real or generated, without a model: BLEU, statistics, memorisation.

    Returns:
        `(dict, values, histograms)`: the report's entry, and the per-piece statistics and histograms.
    """
    values, hists = statistics_section(samples, codec.config.steps_per_quarter)
    bleu, cumulative = bleu_section(samples, corpus.references)
    entry = {
        "bleu": bleu,
        "cumulative_bleu": cumulative,
        "statistics": {name: _summary(v) for name, v in values.items()},
        "statistics_per_piece": values,
        "histograms": {name: h.mean(axis=0).tolist() for name, h in hists.items()},
        "memorisation": memorisation_section(samples, corpus.memory, codec, config),
    }
    return entry, values, hists


def _evaluate_model(name, model, tokenizer, corpus: EvaluationCorpus, real, config: EvaluationConfig, progress: bool):
    """One model's entry of the report, and its generated pieces. ``real``: (entry, values, hists, features)."""
    codec = tokenizer.codec
    _, real_values, real_hists, real_features = real
    _log(progress, f"{name}: likelihood")
    entry = {"parameters": int(sum(p.numel() for p in model.parameters()))}
    if corpus.nll_split is not None:
        entry["nll"] = validation_nll(model, tokenizer, corpus.nll_split, config.nll_windows, config.batch_size)
    composers = [s.composer for s in corpus.excerpts]
    _log(progress, f"{name}: generating {config.pieces} pieces of {config.bars} bars")
    generated, totals = generate_samples(model, tokenizer, composers, config, constrained=True)
    _log(progress, f"{name}: generating {config.unconstrained_pieces} pieces without constraints")
    _, loose = generate_samples(model, tokenizer, composers, config, constrained=False)
    _log(progress, f"{name}: BLEU, statistics, memorisation, discriminator")
    described, values, hists = describe_samples(generated, corpus, codec, config)
    features = np.array([excerpt_features(s, codec) for s in generated])
    seconds, steps = totals["seconds"], totals["steps"]
    entry["generation"] = {
        "pieces": len(generated),
        "tokens": totals["tokens"],
        "seconds": seconds,
        "tokens_per_second": totals["tokens"] / seconds if seconds else math.nan,
        "interventions": totals["interventions"],
        "steps": steps,
        "intervention_rate": totals["interventions"] / steps if steps else math.nan,
    }
    entry.update(
        described,
        overlap=overlap_section(real_values, real_hists, values, hists),
        well_formedness=well_formedness(loose, config.unconstrained_pieces),
        discriminator=discriminator_accuracy(real_features, features, config.folds, config.seed),
    )
    return entry, generated


def evaluate_models(
    model_dirs, data_dir, out_dir=None, config: EvaluationConfig | None = None, progress: bool = True
) -> dict:
    """Evaluate saved models against a corpus; with ``out_dir``, write the report there.

    Args:
        model_dirs (`list[str]`): saved model directories (``save_pretrained``, with their tokenizer).
        data_dir (`str` or `Path`): a corpus built by ``maia data build`` with the models' vocabulary.
        out_dir (`str` or `Path`, *optional*): where to write ``report.md``, ``report.json``, the PNGs
            and the generated pieces (``samples/*.txt``).
        config (`EvaluationConfig`, *optional*): what to generate and measure.
        progress (`bool`, *optional*, defaults to `True`): print a line per step.

    Returns:
        `dict`: every number of the report (also written as ``report.json``).

    Raises:
        MaiaInputError: a model directory or the corpus is missing, or their vocabularies differ.
    """
    from .compose import load_model

    config = config or EvaluationConfig()
    model_dirs = [str(d) for d in ([model_dirs] if isinstance(model_dirs, (str, Path)) else model_dirs)]
    if not model_dirs:
        raise MaiaInputError("give at least one model directory to evaluate")
    began = time.perf_counter()
    model, tokenizer = load_model(model_dirs[0])
    _log(progress, f"reading the corpus {data_dir}")
    corpus = load_evaluation_corpus(
        data_dir, tokenizer, config.pieces, config.bars, config.max_reference_words, config.seed
    )
    codec = tokenizer.codec
    real_entry, real_values, real_hists = describe_samples(corpus.excerpts, corpus, codec, config)
    real_features = np.array([excerpt_features(s, codec) for s in corpus.excerpts])
    report = {
        "settings": {**asdict(config), "models": model_dirs, "data": str(data_dir)},
        "data": {**corpus.info, "nll_split": corpus.nll_split_name, "real_excerpts": len(corpus.excerpts)},
        "real": real_entry,
        "models": {},
    }
    samples = {"real": corpus.excerpts}
    for i, (name, directory) in enumerate(zip(_model_names(model_dirs), model_dirs, strict=True)):
        if i > 0:  # one model in memory at a time
            model, model_tokenizer = load_model(directory)
            if model_tokenizer.get_vocab() != tokenizer.get_vocab():
                raise MaiaInputError(
                    f"{directory!r} has another vocabulary than {model_dirs[0]!r}; compare like with like"
                )
        real = (real_entry, real_values, real_hists, real_features)
        entry, samples[name] = _evaluate_model(name, model, tokenizer, corpus, real, config, progress)
        report["models"][name] = {"dir": directory, **entry}
        del model
    report["seconds"] = round(time.perf_counter() - began, 2)
    if out_dir is not None:
        from .evaluation_report import write_report

        report["files"] = write_report(report, samples, out_dir, codec)
        _log(progress, f"wrote {report['files']['markdown']}")
    return report
