"""Write an evaluation (from :func:`maia_hf.evaluation.evaluate_models`) as Markdown, JSON, PNGs and samples.

Files in the output folder:

- ``report.md``: the tables, with a line on how to read each (``docs/evaluation.md`` says more);
- ``report.json``: every number, per piece where there is one (NaN written as ``null``);
- ``ngram_strip.png``: the cumulated n-gram strip plot, each piece's cumulative BLEU-2..5 per model
  and for real music;
- ``statistics.png``: each musical statistic per piece, and the mean note-length and interval histograms;
- ``samples/NAME.txt``: the generated pieces (and ``samples/real.txt`` the real excerpts) as notewise
  text, which ``maia detokenize`` turns into MIDI.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..codec import NotewiseCodec, Piece
from ..errors import MaiaInputError
from ..generation.continuation import DEFAULT_MAX_NOTE_QUARTERS
from ..io import write_notewise
from .plots import LABELS, REAL, plot_ngram_strip, plot_statistics
from .statistics import HISTOGRAMS, STATISTICS

__all__ = ["report_markdown", "write_report"]


def check_report_dir(out_dir) -> None:
    """Refuse to write a report into a file, or into a folder that holds other things than a maia report.

    Raises:
        MaiaInputError: ``out_dir`` is a file, or a non-empty folder without a ``report.json``.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise MaiaInputError(f"--out {str(out)!r} is a file; give a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not (out / "report.json").is_file():
        raise MaiaInputError(
            f"--out {str(out)!r} already holds other files and no maia report; give a new or empty folder "
            "(or the folder of an earlier `maia evaluate`, which is replaced)"
        )


def write_report(report: dict, samples: dict, out_dir, codec: NotewiseCodec) -> dict[str, str]:
    """Write the report's files into ``out_dir``; returns their paths by kind."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "markdown": str(out / "report.md"),
        "json": str(out / "report.json"),
        "ngram_strip": str(plot_ngram_strip(report, out / "ngram_strip.png")),
        "statistics": str(plot_statistics(report, out / "statistics.png")),
    }
    for name, pieces in samples.items():
        as_pieces = [Piece(s.notes, name=s.name, composer=s.composer) for s in pieces]
        files[f"samples_{name}"] = str(write_notewise(as_pieces, out / "samples" / f"{name}.txt", codec))
    report = {**report, "files": files}
    Path(files["json"]).write_text(json.dumps(_finite(report), indent=1), encoding="utf-8")
    Path(files["markdown"]).write_text(report_markdown(report), encoding="utf-8")
    return files


def _finite(value):
    """The report with NaN and infinities as None (JSON has no NaN) and numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _f(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _limits(settings: dict) -> str:
    """The longest-note limit and best-of-N of the generated pieces, as the header's words."""
    n, longest = settings.get("candidates", 1), settings.get("max_note_quarters", DEFAULT_MAX_NOTE_QUARTERS)
    limit = f", notes of at most {longest:g} quarters" if longest else ", no limit on a note's length"
    return limit + (f", each the likeliest of {n} candidates" if n > 1 else "")


def _top_p(settings: dict) -> str:
    """Nucleus sampling's threshold as the header's words, when it was on."""
    top_p = settings.get("top_p")
    return f", top-p {top_p:g}" if top_p is not None else ""


def _what_was_generated(s: dict) -> str:
    """How the generated pieces began: from the composer token, or continuing the bars before each real excerpt."""
    n = s.get("prompt_bars", 0)
    if not n:
        return "from its composer token alone"
    guidance = [f"grid {s['grid']}"] if s.get("grid") not in (None, "off") else []
    guidance += [f"key guidance {s['key_guidance']:g}"] if s.get("key_guidance") else []
    extra = f", {', '.join(guidance)}" if guidance else ""
    return f"continuing the {n} bar{'s' * (n != 1)} before each real excerpt, in its place{extra}"


def report_markdown(report: dict) -> str:
    """The report as Markdown: settings, then one section per measurement with a line on how to read it."""
    s, models, real = report["settings"], report["models"], report["real"]
    data = report["data"]
    lines = [
        "# maia evaluation",
        "",
        f"Corpus `{s['data']}`: {data['train_pieces']:,} training pieces ({data['reference_sequences']:,} sequences, "
        f"{data['reference_words']:,} words as BLEU references); real excerpts from {data['held_out_pieces']:,} "
        f"{data['held_out_split']} pieces. Each model wrote {s['pieces']} pieces of {s['bars']} bars (4/4) "
        f"{_what_was_generated(s)} (top-k {s['top_k']}{_top_p(s)}, temperature {s['temperature']}, seed {s['seed']}"
        f"{_limits(s)}), "
        f"and {s['unconstrained_pieces']} more without constraints. Every number is explained in "
        "`docs/evaluation.md`.",
        "",
        "| model | directory | parameters | generation |",
        "|---|---|---:|---:|",
    ]
    for name, m in models.items():
        g = m["generation"]
        speed = f"{g['tokens']:,} tokens, {_f(g['tokens_per_second'], 0)}/s"
        lines.append(f"| {name} | `{m['dir']}` | {m['parameters']:,} | {speed} |")
    lines += _likelihood(report) + _infilling(models) + _bleu(models, real) + _statistics(models, real)
    lines += _memorisation(models, real) + _well_formedness(models) + _discriminator(models)
    lines += ["", f"Evaluation took {report.get('seconds', 0):.0f} s.", ""]
    return "\n".join(lines)


def _likelihood(report: dict) -> list[str]:
    split = report["data"]["nll_split"]
    lines = ["", "## Likelihood", ""]
    if not split:
        return lines + ["The corpus has no validation or test windows: no likelihood."]
    lines += [
        f"Negative log-likelihood of the {split} windows (each token scored once, lower is better). "
        "Bits per note divides all the bits by the note-on words: what a note costs, its waits and note-off included.",
        "",
    ]
    rows = []
    for name, m in report["models"].items():
        n = m.get("nll", {})
        rows.append(
            [name, _f(n.get("tokens")), _f(n.get("nats_per_token")), _f(n.get("bits_per_token")),
             _f(n.get("bits_per_note")), _f(n.get("perplexity"), 2)]
        )  # fmt: skip
    return lines + _table(["model", "tokens", "nats/token", "bits/token", "bits/note", "perplexity"], rows)


def _infilling(models: dict) -> list[str]:
    filled = {name: m["infilling"] for name, m in models.items() if m.get("infilling")}
    if not filled:
        return []
    lines = [
        "", "## Infilling", "",
        "Bits per middle token of held-out gaps of 1-4 bars cut from the same windows (lower is better): given "
        "the prefix and the suffix in the model's fill-in-the-middle order, given the prefix alone (left to "
        "right), and after another gap's suffix. A model that uses what comes after the gap gives the middle "
        "fewer bits with its suffix than with the prefix alone, and than with a wrong suffix.", "",
    ]  # fmt: skip
    rows = [
        [name, f["order"], _f(f["gaps"]), _f(f["tokens"]), _f(f["bits_per_token_with_suffix"]),
         _f(f["bits_per_token_prefix_only"]), _f(f["bits_per_token_other_suffix"]), f"{100 * f['saving']:.1f}%"]
        if f["gaps"] else [name, f["order"], "0", "0", "-", "-", "-", "-"]
        for name, f in filled.items()
    ]  # fmt: skip
    header = ["model", "order", "gaps", "middle tokens", "with the suffix", "prefix alone", "another suffix", "saving"]
    return lines + _table(header, rows)


def _bleu(models: dict, real: dict) -> list[str]:
    lines = [
        "",
        "## BLEU against the training pieces",
        "",
        "maia's BLEU (weights 0.05, 0.05, 0.1, 0.4, 0.4 on 1- to 5-grams). Read it against the real excerpts' "
        "score: far below it, the model does not write the corpus's figures; far above it, it repeats them more "
        "than real music does (see memorisation).",
        "",
    ]
    rows = []
    for name, bleu in [(REAL, real["bleu"])] + [(n, m["bleu"]) for n, m in models.items()]:
        rows.append([name, _f(bleu["bleu"])] + [_f(bleu[f"precision_{k}"]) for k in range(1, 6)])
    lines += _table(["pieces", "BLEU", "p1", "p2", "p3", "p4", "p5"], rows)
    return lines + ["", "![cumulated n-gram strip plot](ngram_strip.png)"]


def _statistics(models: dict, real: dict) -> list[str]:
    lines = [
        "",
        "## Musical statistics",
        "",
        "Mean ± standard deviation over pieces; OA: overlapping area of the distances between real pieces and "
        "the distances between real and generated pieces (Yang and Lerch 2018; 1 = generated pieces sit among "
        "real ones as real ones do among themselves).",
        "",
    ]
    header = ["statistic", REAL] + [h for name in models for h in (name, f"OA {name}")]
    rows = []
    for stat in STATISTICS:
        row = [LABELS[stat], _pm(real["statistics"][stat])]
        for m in models.values():
            row += [_pm(m["statistics"][stat]), _f(m["overlap"][stat]["overlap"])]
        rows.append(row)
    for hist in HISTOGRAMS:
        rows.append(
            [LABELS[hist], "see figure"] + [x for m in models.values() for x in ("", _f(m["overlap"][hist]["overlap"]))]
        )
    return lines + _table(header, rows) + ["", "![statistics](statistics.png)"]


def _pm(summary: dict) -> str:
    return f"{_f(summary['mean'], 2)} ± {_f(summary['std'], 2)}"


def _memorisation(models: dict, real: dict) -> list[str]:
    bars = real["memorisation"]["copy_bars"]
    lines = [
        "",
        "## Memorisation",
        "",
        f"Longest n-gram of each piece found in the training set (words), longest copied stretch (4/4 bars), and the "
        f"share of pieces copying {bars:g} bars or more verbatim, in any key. Real held-out excerpts show what "
        "unrelated music shares with the corpus by chance.",
        "",
    ]
    rows = []
    for name, mem in [(REAL, real["memorisation"])] + [(n, m["memorisation"]) for n, m in models.items()]:
        rows.append(
            [name, _f(mem["longest_ngram_median"], 0), _f(mem["longest_ngram_max"]),
             _f(mem["longest_copy_bars_median"], 2), _f(mem["longest_copy_bars_max"], 2), _f(mem["share_copying"], 2)]
        )  # fmt: skip
    header = [
        "pieces",
        "longest n-gram (median)",
        "(max)",
        "copied bars (median)",
        "(max)",
        f"share copying ≥ {bars:g} bars",
    ]
    return lines + _table(header, rows)


def _well_formedness(models: dict) -> list[str]:
    lines = [
        "",
        "## Well-formedness before constraints",
        "",
        "Repairs the decoder made to pieces sampled without constraints, per 1,000 tokens: note-offs of silent "
        "pitches (ignored), notes never closed, note-ons of sounding pitches (re-strikes), special tokens inside "
        "the music (skipped). With constraints "
        "(the pieces above), 'overridden' is the share of steps where the model's first choice was not allowed.",
        "",
    ]
    rows = []
    for name, m in models.items():
        w, g = m["well_formedness"], m["generation"]
        rows.append(
            [name, _f(w["tokens"]), _f(w["ignored_note_offs_per_1000_tokens"], 1),
             _f(w["closed_at_end_per_1000_tokens"], 1), _f(w["restruck_per_1000_tokens"], 1),
             _f(w["skipped_specials_per_1000_tokens"], 1), _f(w["repairs_per_1000_tokens"], 1),
             _f(w["share_of_pieces_with_repairs"], 2),
             _f(g["intervention_rate"], 3)]
        )  # fmt: skip
    header = [
        "model",
        "tokens",
        "ignored offs",
        "closed at end",
        "re-strikes",
        "specials",
        "all repairs",
        "pieces with any",
        "overridden",
    ]
    return lines + _table(header, rows)


def _discriminator(models: dict) -> list[str]:
    lines = [
        "",
        "## Discriminator",
        "",
        "Held-out accuracy of a logistic regression telling real excerpts from generated ones (statistics, "
        "histograms, word and word-pair frequencies; cross-validated). 50% = indistinguishable, 100% = told apart "
        "every time.",
        "",
    ]
    rows = []
    for name, m in models.items():
        d = m["discriminator"]
        rows.append([name, f"{d['real']} / {d['generated']}", _f(d["folds"]), _pct(d["accuracy"]), _pct(d["stderr"])])
    return lines + _table(["model", "real / generated", "folds", "accuracy", "± (s.e.)"], rows)


def _pct(value) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{100 * value:.0f}%"
