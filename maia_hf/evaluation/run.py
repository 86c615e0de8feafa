"""Evaluate maia models against a corpus: the job behind ``maia evaluate``.

For each model directory and one corpus built by :func:`maia_hf.data.build_dataset`,
:func:`evaluate_models` measures (``docs/evaluation.md`` explains every number):

1. **likelihood** (:mod:`~maia_hf.evaluation.likelihood`): the negative log-likelihood of the validation
   windows, in nats and bits per token and in bits per note, each token scored once with the context of
   the window it is new in;
2. **BLEU** (maia's weights, :mod:`maia_hf.metrics`) of generated pieces against the training pieces,
   beside the BLEU of real held-out excerpts of the same length against the same references;
3. **musical statistics** (:mod:`~maia_hf.evaluation.statistics`) of generated and real excerpts, and
   the overlap of their distributions (Yang and Lerch, 2018);
4. **memorisation** (:mod:`~maia_hf.evaluation.memorisation`): each piece's longest n-gram found in the
   training set, and the share of pieces that copy two bars or more verbatim (in any key);
5. **well-formedness before constraints**: pieces sampled with the constraints off, and the repairs the
   decoder had to make (note-offs of silent pitches, notes never closed, re-strikes of sounding pitches);
6. **a discriminator** (:mod:`~maia_hf.evaluation.discriminator`): a logistic regression trained to tell
   real excerpts from generated ones; its held-out accuracy (50%: it cannot tell them apart).
7. **infilling**, for a model trained to fill in the middle (its ``config.fim_order``): the bits per middle
   token of held-out gaps given prefix and suffix, given the prefix alone, and after another gap's suffix
   (:func:`~maia_hf.evaluation.infilling.infilling_nll`, on the same validation windows as the likelihood).

The corpus keeps no time signatures, so a bar here is four quarter notes (48 steps at 12 a quarter).
:mod:`~maia_hf.evaluation.corpus` reads the real music and the references from the corpus;
:mod:`~maia_hf.evaluation.report` writes the Markdown report, :mod:`~maia_hf.evaluation.plots` the figures.

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

from ..codec import NoteArray, NotewiseCodec, Piece
from ..errors import MaiaInputError
from ..generation.continuation import DEFAULT_MAX_NOTE_QUARTERS
from ..metrics import bleu_from_matches, count_matches, cumulative_bleu
from .corpus import BEATS_PER_BAR, EvaluationCorpus, Sample, load_evaluation_corpus
from .discriminator import discriminator_accuracy, excerpt_features
from .likelihood import validation_nll
from .memorisation import memorisation_report
from .statistics import HISTOGRAMS, STATISTICS, distribution_overlap, piece_histograms, piece_statistics

__all__ = [
    "EvaluationConfig",
    "describe_samples",
    "evaluate_models",
    "generate_samples",
    "well_formedness",
]

CUMULATIVE_ORDERS = (2, 3, 4, 5)
_REPAIRS = ("ignored_note_offs", "closed_at_end", "restruck")  # what codec.decode counts
_TOTALS = ("tokens", "seconds", "interventions", "steps", *_REPAIRS, "skipped_specials", "pieces_with_repairs")


@dataclass
class EvaluationConfig:
    """What :func:`evaluate_models` generates and measures.

    Args:
        pieces (`int`, *optional*, defaults to 20): pieces generated per model, and real excerpts.
        bars (`int`, *optional*, defaults to 8): length of each generated piece and real excerpt (4/4 bars).
        top_k (`int`, *optional*, defaults to 5), top_p (`float`, *optional*), temperature (`float`, *optional*,
            defaults to 1.0): sampling, as in :func:`~maia_hf.generation.continue_piece` (``top_k=0``: off;
            ``top_p``: nucleus sampling, off by default).
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
        candidates (`int`, *optional*, defaults to 1): each generated piece is the likeliest of this many sampled
            as one batch (best-of-N, as ``maia generate --candidates``); evaluate 1 against N to see what it buys.
        prompt_bars (`int`, *optional*, defaults to 0): 0 generates each piece from nothing but its composer
            token; N > 0 makes each real excerpt start after N bars of its piece and has the model continue those
            N bars instead, so that real and generated music follow the same prompt (same key, composer, place).
        grid (`int` or `str`, *optional*), key_guidance (`float`, *optional*, defaults to 0): as in
            :func:`~maia_hf.generation.continue_piece`; they act on continuations of a prompt only.
        max_note_quarters (`float`, *optional*, defaults to 12): the longest note of a constrained piece, in
            quarter notes, as in :func:`~maia_hf.generation.continue_piece` (None: no limit).

    Example:

    ```python
    >>> config = EvaluationConfig(pieces=4, bars=2)
    >>> config.unconstrained_pieces, config.tokens_per_bar * config.bars   # pieces without constraints; budget
    (4, 320)

    ```
    """

    pieces: int = 20
    bars: int = 8
    top_k: int = 5
    temperature: float = 1.0
    seed: int = 0
    top_p: float | None = None
    unconstrained_pieces: int | None = None
    nll_windows: int = 256
    batch_size: int = 8
    max_reference_words: int = 2_000_000
    copy_bars: float = 2.0
    folds: int = 5
    tokens_per_bar: int = 160
    candidates: int = 1
    prompt_bars: int = 0
    grid: int | str | None = None
    key_guidance: float = 0.0
    max_note_quarters: float | None = DEFAULT_MAX_NOTE_QUARTERS

    def __post_init__(self):
        if self.unconstrained_pieces is None:
            self.unconstrained_pieces = self.pieces
        if self.pieces < 1 or self.bars < 1:
            raise MaiaInputError(f"pieces and bars must be >= 1, got {self.pieces} and {self.bars}")
        if self.prompt_bars < 0:
            raise MaiaInputError(f"prompt bars must be >= 0 (0: pieces from nothing), got {self.prompt_bars}")
        from ..generation.settings import check_candidates, check_generation_settings

        check_candidates(self.candidates)
        check_generation_settings(
            top_k=self.top_k, top_p=self.top_p, temperature=self.temperature, grid=self.grid,
            key_guidance=self.key_guidance, max_note_quarters=self.max_note_quarters,
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def generate_samples(
    model, tokenizer, composers: list[str], config: EvaluationConfig, constrained: bool = True, prompts=None
):
    """Sample pieces of ``config.bars`` bars from nothing but ``<start> <composer:..>``, one seed each.

    With ``prompts`` (one `NoteArray` or None per composer), piece ``i`` continues ``prompts[i]`` instead, and
    is the continuation alone, its times from the prompt's end.

    Returns:
        `(list[Sample], dict)`: the pieces, and totals over them: ``tokens``, ``seconds``,
        ``interventions`` and ``steps`` (constrained), ``ignored_note_offs``, ``closed_at_end``,
        ``restruck`` (the decoder's repairs), ``skipped_specials`` (special tokens inside the music, which
        the decoder skips) and ``pieces_with_repairs``.
    """
    from ..generation import continue_piece

    count = config.pieces if constrained else config.unconstrained_pieces
    known = set(tokenizer.composers)
    length = config.bars * BEATS_PER_BAR * tokenizer.codec.config.steps_per_quarter
    samples = []
    totals = dict.fromkeys(_TOTALS, 0)
    for i in range(count):
        composer = composers[i % len(composers)] if composers else "unknown"
        composer = composer if composer in known else "unknown"
        seed = config.seed + i + (0 if constrained else 100_000)
        prompt = prompts[i % len(prompts)] if prompts else None
        guidance = {"grid": config.grid if constrained else None, "key_guidance": config.key_guidance}
        (c,) = continue_piece(
            model, tokenizer, None if prompt is None else Piece(prompt, composer=composer), composer=composer,
            bars=config.bars, top_k=config.top_k, top_p=config.top_p, seed=seed,
            max_new_tokens=config.tokens_per_bar * config.bars,
            temperature=config.temperature, constrained=constrained, progress=False, candidates=config.candidates,
            max_note_quarters=config.max_note_quarters, **(guidance if prompt is not None else {}),
        )  # fmt: skip
        words = tokenizer.codec.words_to_indices(c.words) if c.words else np.zeros(0, dtype=np.int64)
        n = c.continuation.notes
        notes = NoteArray(n.pitch, n.start - c.prompt_end, n.end - c.prompt_end, n.velocity)
        samples.append(Sample(words, notes, max(length, int(notes.end.max(initial=0))), composer, f"seed {seed}"))
        _add_to_totals(totals, c, len(words))
    return samples, totals


def _add_to_totals(totals: dict, continuation, words: int) -> None:
    """Add one generated piece's tokens, time, constraint interventions and repairs to ``totals``."""
    for key in _REPAIRS:
        totals[key] += continuation.stats[key]
    skipped = continuation.tokens - words  # <start>, composer or <unk> tokens inside the music
    totals["skipped_specials"] += skipped
    totals["pieces_with_repairs"] += skipped > 0 or any(continuation.stats[key] for key in _REPAIRS)
    for key in ("tokens", "seconds", "interventions", "steps"):
        totals[key] += getattr(continuation, key)


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
    # Why maia weighs the orders as it does: the metric card, maia_hf/metrics/maia_bleu/README.md.
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
# The whole evaluation
# --------------------------------------------------------------------------------------------


def _model_names(model_dirs) -> list[str]:
    names = []
    for d in model_dirs:
        name = Path(d).name or str(d)
        names.append(name if name not in names else f"{name}-{len(names) + 1}")
    return names


def _load_with_vocabulary(directory: str, tokenizer, first_dir: str):
    """The model saved in ``directory``, which must share the first model's vocabulary."""
    from ..compose import load_model

    model, model_tokenizer = load_model(directory)
    if model_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise MaiaInputError(f"{directory!r} has another vocabulary than {first_dir!r}; compare like with like")
    return model


def _log(progress: bool, text: str) -> None:
    if progress:
        print(f"maia evaluate: {text}", flush=True)


def generation_speed(totals: dict, pieces: int) -> dict:
    """Tokens per second of constrained generation, and how often the constraints overrode the model."""
    seconds, steps = totals["seconds"], totals["steps"]
    return {
        "pieces": pieces,
        "tokens": totals["tokens"],
        "seconds": seconds,
        "tokens_per_second": totals["tokens"] / seconds if seconds else math.nan,
        "interventions": totals["interventions"],
        "steps": steps,
        "intervention_rate": totals["interventions"] / steps if steps else math.nan,
    }


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
        if getattr(model.config, "fim_order", None) and tokenizer.layout.has_fim:
            from .infilling import infilling_nll

            _log(progress, f"{name}: infilling")
            entry["infilling"] = infilling_nll(
                model, tokenizer, corpus.nll_split, max_windows=config.nll_windows, batch_size=config.batch_size
            )
    composers = [s.composer for s in corpus.excerpts]
    prompts = [s.prompt for s in corpus.excerpts] if config.prompt_bars else None
    what = f"continuations of {config.bars} bars" if prompts else f"pieces of {config.bars} bars"
    _log(progress, f"{name}: generating {config.pieces} {what}")
    generated, totals = generate_samples(model, tokenizer, composers, config, constrained=True, prompts=prompts)
    _log(progress, f"{name}: generating {config.unconstrained_pieces} {what.split()[0]} without constraints")
    _, loose = generate_samples(model, tokenizer, composers, config, constrained=False, prompts=prompts)
    _log(progress, f"{name}: BLEU, statistics, memorisation, discriminator")
    described, values, hists = describe_samples(generated, corpus, codec, config)
    features = np.array([excerpt_features(s, codec) for s in generated])
    entry["generation"] = generation_speed(totals, len(generated))
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
    from ..compose import load_model
    from .report import check_report_dir

    if out_dir is not None:
        check_report_dir(out_dir)
    config = config or EvaluationConfig()
    model_dirs = [str(d) for d in ([model_dirs] if isinstance(model_dirs, (str, Path)) else model_dirs)]
    if not model_dirs:
        raise MaiaInputError("give at least one model directory to evaluate")
    began = time.perf_counter()
    model, tokenizer = load_model(model_dirs[0])
    _log(progress, f"reading the corpus {data_dir}")
    corpus = load_evaluation_corpus(
        data_dir, tokenizer, config.pieces, config.bars, config.max_reference_words, config.seed, config.prompt_bars
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
            model = _load_with_vocabulary(directory, tokenizer, model_dirs[0])
        real = (real_entry, real_values, real_hists, real_features)
        entry, samples[name] = _evaluate_model(name, model, tokenizer, corpus, real, config, progress)
        report["models"][name] = {"dir": directory, **entry}
        del model
    report["seconds"] = round(time.perf_counter() - began, 2)
    if out_dir is not None:
        from .report import write_report

        report["files"] = write_report(report, samples, out_dir, codec)
        _log(progress, f"wrote {report['files']['markdown']}")
    return report
