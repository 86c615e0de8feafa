"""Benchmark maia's notewise codec against MidiTok's REMI and TSD on piano-midi.de.

Run from the repository root (a full run takes a few minutes on 2 cores):

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_codec.py

Options: ``--corpus DIR`` (default /work/shared/corpora/piano-midi-de/midis, searched recursively
for .mid/.midi), ``--repeats N`` (default 5; the median is reported), ``--out DIR`` (default
docs/benchmarks), ``--no-write`` (print only), ``--limit N`` (first N files; implies --no-write),
``--check`` (exit 1 when a goal is missed). Without the corpus it prints a message and exits 0.

What is measured (every file is loaded once with ``symusic.Score(path)`` before any timing):

* encode, from a loaded Score to token ids: maia is ``io._raw_from_symusic`` + ``io.to_piece`` +
  ``codec.encode(notes, canonical=True)``; MidiTok is ``tokenizer.encode(score)`` (its
  preprocessing, i.e. resampling / dedup, included), REMI and TSD at 12 positions per beat
  (``beat_res={(0, 4): 12, (4, 12): 4}``), ``use_programs=False`` (one sequence per track),
  otherwise MidiTok's defaults (so it also writes velocity and time-signature tokens);
* decode, from those ids to a ``symusic.Score``: maia is ``codec.decode(ids)`` +
  ``io.piece_to_symusic(Piece(notes))`` (ids only, no tempo map, as ``MaiaTokenizer.decode_to_score``
  does by default); MidiTok is ``tokenizer.decode(tokens)``;
* maia "from file": ``symusic.Score(path)`` + the maia encode above, per file;
* all 12 transpositions (-5..+6) with maia, from loaded Scores: per piece ``_raw_from_symusic`` and
  ``to_piece`` once, then ``codec.encode(piece.notes, transpose=k)`` for each k (k = 0 with
  ``canonical=True``); the 12 encodes alone are reported too.

Notes per second always divide by the same count: the pitched notes (drum tracks excluded) of the
loaded Scores. Encode and decode are interleaved file by file: for each file maia, REMI and TSD
run back to back, each call timed, and the times are summed per tokenizer, so a change of load on
a shared machine hits all three alike. Each repetition runs every measurement once; the median of
the repetitions is reported (the per-repetition ratio, paired, is in the JSON too).

torch is never imported: maia's ``codec`` and ``io`` modules are loaded without running
``maia_hf/__init__`` (which registers with transformers and so imports torch), and ``torch`` is
blocked so that MidiTok skips its optional PyTorch data module.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from machine import details as machine  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = Path("/work/shared/corpora/piano-midi-de/midis")
DEFAULT_OUT = ROOT / "docs" / "benchmarks"
MIDI_SUFFIXES = {".mid", ".midi"}
TRANSPOSITIONS = tuple(range(-5, 7))
BEAT_RES = {(0, 4): 12, (4, 12): 4}
GOAL_ENCODE_RATIO = 10.0
GOAL_TRANSPOSE_SECONDS = 10.0


# ---------------------------------------------------------------------------------------------
# Imports without torch
# ---------------------------------------------------------------------------------------------


def import_without_torch():
    """Import maia's codec and io modules and MidiTok, with torch kept out of the process."""
    if "torch" not in sys.modules:
        sys.modules["torch"] = None  # `import torch` now raises ImportError; MidiTok handles that
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if "maia_hf" not in sys.modules:
        # The package object without its __init__ (which imports transformers and torch); its
        # submodules codec and io need numpy only (io also symusic, lazily).
        spec = importlib.util.find_spec("maia_hf")
        sys.modules["maia_hf"] = importlib.util.module_from_spec(spec)
    codec_mod = importlib.import_module("maia_hf.codec")
    io_mod = importlib.import_module("maia_hf.io")
    import miditok
    import numpy
    import symusic

    return codec_mod, io_mod, miditok, numpy, symusic


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def midi_files(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES)


def pitched_notes(score) -> int:
    return sum(len(track.notes) for track in score.tracks if not track.is_drum)


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call of ``fn``."""
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        benchmarked = ["maia_hf/codec.py", "maia_hf/io.py"]  # "+dirty": these differ from the commit
        dirty = subprocess.run(["git", "status", "--porcelain", *benchmarked], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else None
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------


def run(args) -> dict | None:
    corpus = Path(args.corpus)
    files = midi_files(corpus) if corpus.is_dir() else []
    if not files:
        print(f"corpus {str(corpus)!r} not found or holds no MIDI files; nothing measured, docs left as they are")
        print("give another folder with --corpus DIR")
        return None
    if args.limit:
        files = files[: args.limit]

    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    codec_mod, io_mod, miditok, np, symusic = import_without_torch()
    codec = codec_mod.NotewiseCodec()
    spq = codec.config.steps_per_quarter
    Piece = codec_mod.Piece

    print(f"loading {len(files)} files from {corpus} ...", flush=True)
    names = [str(p) for p in files]
    scores = [symusic.Score(name) for name in names]
    n_files = len(scores)
    n_notes = sum(pitched_notes(s) for s in scores)
    n_tempos = sum(len(s.tempos) for s in scores)

    def tokenizer(cls):
        config = miditok.TokenizerConfig(beat_res=BEAT_RES, use_programs=False, one_token_stream_for_programs=False)
        return cls(config)

    tokenizers = {"MidiTok REMI": tokenizer(miditok.REMI), "MidiTok TSD": tokenizer(miditok.TSD)}

    # ---- the operations timed -----------------------------------------------------------------

    def maia_encode_one(score, name):
        raw = io_mod._raw_from_symusic(score, name)
        piece, _ = io_mod.to_piece(raw, codec)
        return codec.encode(piece.notes, canonical=True)

    def maia_encode_all():
        return [maia_encode_one(s, n) for s, n in zip(scores, names, strict=True)]

    def maia_decode_one(ids):
        return io_mod.piece_to_symusic(Piece(codec.decode(ids).notes), spq)

    def maia_decode_all(all_ids):
        return [maia_decode_one(ids) for ids in all_ids]

    def maia_from_file_all():
        return [maia_encode_one(symusic.Score(n), n) for n in names]

    def maia_pieces():
        return [io_mod.to_piece(io_mod._raw_from_symusic(s, n), codec)[0] for s, n in zip(scores, names, strict=True)]

    def encode_transposed(piece, k):
        if k == 0:
            return codec.encode(piece.notes, canonical=True)
        return codec.encode(piece.notes, transpose=k)

    def maia_transpose_all():  # from loaded Scores: canonicalize once, 12 encodes
        out = 0
        for s, n in zip(scores, names, strict=True):
            piece, _ = io_mod.to_piece(io_mod._raw_from_symusic(s, n), codec)
            for k in TRANSPOSITIONS:
                out += len(encode_transposed(piece, k))
        return out

    def maia_transpose_encodes_only(pieces):
        return sum(len(encode_transposed(p, k)) for p in pieces for k in TRANSPOSITIONS)

    def maia_stages():  # the maia encode split by step (instrumented; per-step sums)
        t_raw = t_piece = t_enc = 0.0
        for s, n in zip(scores, names, strict=True):
            t0 = time.perf_counter()
            raw = io_mod._raw_from_symusic(s, n)
            t1 = time.perf_counter()
            piece, _ = io_mod.to_piece(raw, codec)
            t2 = time.perf_counter()
            codec.encode(piece.notes, canonical=True)
            t3 = time.perf_counter()
            t_raw, t_piece, t_enc = t_raw + t1 - t0, t_piece + t2 - t1, t_enc + t3 - t2
        return {"raw_from_symusic": t_raw, "to_piece": t_piece, "codec_encode": t_enc}

    # ---- warm-up (untimed): decode inputs, token counts, checks --------------------------------

    print("warm-up and checks ...", flush=True)
    maia_ids = maia_encode_all()
    pieces = maia_pieces()
    mt_tokens = {label: [tok.encode(s) for s in scores] for label, tok in tokenizers.items()}
    token_counts = {"maia notewise": int(sum(len(ids) for ids in maia_ids))}
    decoded_notes = {"maia notewise": sum(pitched_notes(s) for s in maia_decode_all(maia_ids))}
    for label, tok in tokenizers.items():
        token_counts[label] = int(sum(len(seq) for seqs in mt_tokens[label] for seq in seqs))
        decoded_notes[label] = sum(pitched_notes(tok.decode(seqs)) for seqs in mt_tokens[label])
    mismatched = 0  # encode(canonical, transpose=k) against canonicalizing the transposed raw notes
    for s, n, piece in zip(scores, names, pieces, strict=True):
        raw = io_mod._raw_from_symusic(s, n)
        for k in TRANSPOSITIONS:
            direct = codec.encode(io_mod.to_piece(raw, codec, transpose=k)[0].notes, canonical=True)
            mismatched += not np.array_equal(direct, encode_transposed(piece, k))
    maia_transpose_encodes_only(pieces)

    # ---- timed repetitions ---------------------------------------------------------------------

    # Encode and decode: the three tokenizers take turns file by file (each call timed on its own,
    # summed per tokenizer), so a change of load on the shared machine hits all three alike.
    encoders = {"maia notewise": lambda i: maia_encode_one(scores[i], names[i])}
    decoders = {"maia notewise": lambda i: maia_decode_one(maia_ids[i])}
    for label, tok in tokenizers.items():
        encoders[label] = lambda i, tok=tok: tok.encode(scores[i])
        decoders[label] = lambda i, tok=tok, label=label: tok.decode(mt_tokens[label][i])

    def interleaved(ops: dict) -> dict[str, tuple[float, float]]:
        wall, cpu = dict.fromkeys(ops, 0.0), dict.fromkeys(ops, 0.0)
        gc.collect()
        for i in range(n_files):
            for label, op in ops.items():
                t0, c0 = time.perf_counter(), time.process_time()
                op(i)
                wall[label] += time.perf_counter() - t0
                cpu[label] += time.process_time() - c0
        return {label: (wall[label], cpu[label]) for label in ops}

    maia_tasks = {  # maia only: whole-corpus loops
        "from_file": maia_from_file_all,
        "transpose12_total": maia_transpose_all,
        "transpose12_encodes_only": lambda: maia_transpose_encodes_only(pieces),
    }
    # Wall-clock seconds (the results) and CPU seconds of the process (a check: on a machine shared
    # with other work, waiting for a core inflates wall time but not CPU time).
    samples: dict[str, dict[str, list[float]]] = {label: {} for label in encoders}
    cpu_samples: dict[str, dict[str, list[float]]] = {label: {} for label in encoders}

    def record(label, what, wall_cpu):
        samples[label].setdefault(what, []).append(wall_cpu[0])
        cpu_samples[label].setdefault(what, []).append(wall_cpu[1])

    stage_samples: list[dict] = []
    for rep in range(args.repeats):
        for what, ops in (("encode", encoders), ("decode", decoders)):
            for label, wall_cpu in interleaved(ops).items():
                record(label, what, wall_cpu)
        for what, fn in maia_tasks.items():
            record("maia notewise", what, timed(fn))
        gc.collect()
        stage_samples.append(maia_stages())
        done = ", ".join(f"{lb.split()[-1]} enc {s['encode'][-1]:.2f}s" for lb, s in samples.items())
        print(f"  repetition {rep + 1}/{args.repeats}: {done}", flush=True)

    # ---- results -------------------------------------------------------------------------------

    rows = {}
    for label, by_what in samples.items():
        med = {what: statistics.median(v) for what, v in by_what.items()}
        row = {
            "encode_s": med["encode"],
            "encode_notes_per_s": n_notes / med["encode"],
            "encode_ms_per_file": 1000 * med["encode"] / n_files,
            "decode_s": med["decode"],
            "decode_notes_per_s": n_notes / med["decode"],
            "decode_ms_per_file": 1000 * med["decode"] / n_files,
            "tokens": token_counts[label],
            "tokens_per_note": token_counts[label] / n_notes,
            "decoded_notes": decoded_notes[label],
        }
        if "from_file" in med:
            row["from_file_s"] = med["from_file"]
            row["from_file_ms_per_file"] = 1000 * med["from_file"] / n_files
        rows[label] = row
    maia = rows["maia notewise"]
    remi, tsd = rows["MidiTok REMI"], rows["MidiTok TSD"]
    ratios = {
        "encode_maia_over_remi": maia["encode_notes_per_s"] / remi["encode_notes_per_s"],
        "encode_maia_over_tsd": maia["encode_notes_per_s"] / tsd["encode_notes_per_s"],
        "decode_maia_over_remi": maia["decode_notes_per_s"] / remi["decode_notes_per_s"],
        "decode_maia_over_tsd": maia["decode_notes_per_s"] / tsd["decode_notes_per_s"],
    }
    paired = {  # the ratio within each repetition (same load for both), then its median
        f"{what}_maia_over_{other.split()[-1].lower()}": statistics.median(
            o / m for o, m in zip(samples[other][what], samples["maia notewise"][what], strict=True)
        )
        for what in ("encode", "decode")
        for other in tokenizers
    }
    cpu = {  # medians of CPU seconds, and the ratios they give
        label: {what: statistics.median(v) for what, v in by_what.items()} for label, by_what in cpu_samples.items()
    }
    cpu_ratios = {
        f"{what}_maia_over_{other.split()[-1].lower()}": cpu[other][what] / cpu["maia notewise"][what]
        for what in ("encode", "decode")
        for other in tokenizers
    }
    maia_samples = samples["maia notewise"]
    transpose = {
        "transpositions": list(TRANSPOSITIONS),
        "total_s": statistics.median(maia_samples["transpose12_total"]),
        "total_cpu_s": statistics.median(cpu_samples["maia notewise"]["transpose12_total"]),
        "encodes_only_s": statistics.median(maia_samples["transpose12_encodes_only"]),
        "mismatches_vs_transposing_before_canonicalize": mismatched,
        "encodings": len(TRANSPOSITIONS) * n_files,
    }
    stages = {k: statistics.median(s[k] for s in stage_samples) for k in stage_samples[0]}
    goals = {
        "encode_vs_remi": {
            "target": f">= {GOAL_ENCODE_RATIO:g}x",
            "value": ratios["encode_maia_over_remi"],
            "met": ratios["encode_maia_over_remi"] >= GOAL_ENCODE_RATIO,
        },
        "transpose12_seconds": {
            "target": f"< {GOAL_TRANSPOSE_SECONDS:g} s",
            "value": transpose["total_s"],
            "met": transpose["total_s"] < GOAL_TRANSPOSE_SECONDS,
        },
    }
    full_corpus = not args.limit
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_codec.py"
        + ("" if str(corpus) == str(DEFAULT_CORPUS) else f" --corpus {corpus}")
        + ("" if args.repeats == 5 else f" --repeats {args.repeats}"),
        "machine": machine()
        | {"load_average_1min_start": load_start, "load_average_1min_end": os.getloadavg()[0] if load_start else None},
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "symusic": version("symusic"),
            "miditok": version("miditok"),
            "maia-hf": version("maia-hf"),
            "maia_hf_commit": git_commit(),
        },
        "env": {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "torch_imported": bool(sys.modules.get("torch"))},
        "corpus": {
            "path": str(corpus),
            "files": n_files,
            "full": full_corpus,
            "pitched_notes": n_notes,
            "tempo_events": n_tempos,
        },
        "settings": {
            "repeats": args.repeats,
            "maia_codec": codec.config.to_dict(),
            "miditok_config": {
                "beat_res": {f"{a}-{b}": r for (a, b), r in BEAT_RES.items()},
                "use_programs": False,
                "one_token_stream_for_programs": False,
                "others": "MidiTok defaults",
            },
            "miditok_vocab_size": {label: len(tok) for label, tok in tokenizers.items()},
        },
        "results": rows,
        "ratios": ratios,
        "ratios_paired_median": paired,
        "cpu_seconds_median": cpu,
        "ratios_cpu_time": cpu_ratios,
        "transpose": transpose,
        "maia_encode_stages_s": stages,
        "goals": goals,
        "raw_seconds": samples,
        "raw_cpu_seconds": cpu_samples,
        "raw_stage_seconds": stage_samples,
    }


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.0f} k"


def table(res: dict) -> str:
    lines = [
        "| tokenizer | encode notes/s | encode ms/file | decode notes/s | decode ms/file "
        "| from file ms/file | tokens/note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, r in res["results"].items():
        from_file = f"{r['from_file_ms_per_file']:.2f}" if "from_file_ms_per_file" in r else "—"
        lines.append(
            f"| {label} | {fmt_rate(r['encode_notes_per_s'])} | {r['encode_ms_per_file']:.2f} "
            f"| {fmt_rate(r['decode_notes_per_s'])} | {r['decode_ms_per_file']:.2f} | {from_file} "
            f"| {r['tokens_per_note']:.2f} |"
        )
    return "\n".join(lines)


def summary(res: dict) -> str:
    r, t, g, st = res["ratios"], res["transpose"], res["goals"], res["maia_encode_stages_s"]
    pr, cr, cs = res["ratios_paired_median"], res["ratios_cpu_time"], res["cpu_seconds_median"]
    cpu_enc = ", ".join(f"{label} {v['encode']:.2f} s" for label, v in cs.items())
    met = {k: "met" if v["met"] else "NOT met" for k, v in g.items()}
    total_stage = sum(st.values())
    stage_text = ", ".join(f"`{k}` {v:.3f} s ({100 * v / total_stage:.0f} %)" for k, v in st.items())
    return "\n".join(
        [
            f"- maia / REMI: encode **{r['encode_maia_over_remi']:.1f}x**, "
            f"decode **{r['decode_maia_over_remi']:.1f}x** (median of per-repetition ratios: "
            f"{pr['encode_maia_over_remi']:.1f}x, {pr['decode_maia_over_remi']:.1f}x)",
            f"- maia / TSD: encode **{r['encode_maia_over_tsd']:.1f}x**, decode **{r['decode_maia_over_tsd']:.1f}x** "
            f"(median of per-repetition ratios: {pr['encode_maia_over_tsd']:.1f}x, {pr['decode_maia_over_tsd']:.1f}x)",
            f"- all 12 transpositions (-5..+6) of the {res['corpus']['files']} files with maia, from loaded Scores: "
            f"**{t['total_s']:.2f} s** ({t['encodings']} encodings; the 12 `codec.encode` calls alone: "
            f"{t['encodes_only_s']:.2f} s)",
            f"- goal maia encode >= {GOAL_ENCODE_RATIO:g}x REMI: **{met['encode_vs_remi']}** "
            f"({r['encode_maia_over_remi']:.1f}x)",
            f"- goal 12 transpositions < {GOAL_TRANSPOSE_SECONDS:g} s: **{met['transpose12_seconds']}** "
            f"({t['total_s']:.2f} s)",
            f"- CPU time (`time.process_time`, medians) of the corpus encode: {cpu_enc}; ratios maia / REMI "
            f"encode {cr['encode_maia_over_remi']:.1f}x, decode {cr['decode_maia_over_remi']:.1f}x; maia / TSD "
            f"encode {cr['encode_maia_over_tsd']:.1f}x, decode {cr['decode_maia_over_tsd']:.1f}x; "
            f"12 transpositions {t['total_cpu_s']:.2f} s",
            f"- where maia's encode time goes (median per-step sums): {stage_text}",
        ]
    )


def markdown(res: dict) -> str:
    m, v, c = res["machine"], res["versions"], res["corpus"]
    starts, ends = m.get("load_average_1min_start"), m.get("load_average_1min_end")
    load = f"{starts:.1f} / {ends:.1f}" if starts is not None else "unknown"
    t = res["transpose"]
    mismatch = (
        "identical to canonicalizing each transposed score from scratch"
        if t["mismatches_vs_transposing_before_canonicalize"] == 0
        else f"{t['mismatches_vs_transposing_before_canonicalize']} of {t['encodings']} differ from "
        "canonicalizing each transposed score from scratch"
    )
    return f"""# Codec benchmark: maia notewise vs MidiTok REMI and TSD

Written by `benchmarks/bench_codec.py`; raw numbers in [`codec.json`](codec.json). Re-run with:

```
{res["command"]}
```

- date: {res["date"]}
- machine: {m["cpu_model"]}, {m["cpu_count"]} cores ({m["usable_cpus"]} usable), {m["platform"]}; shared with
  other work, so single runs are noisy: every number is the median of {res["settings"]["repeats"]} repetitions;
  load average (1 min) {load} at the start / end of the run
- versions: Python {v["python"]}, numpy {v["numpy"]}, symusic {v["symusic"]}, miditok {v["miditok"]},
  maia-hf {v["maia-hf"]} (commit {v["maia_hf_commit"]})
- corpus: `{c["path"]}`, {c["files"]} MIDI files, {c["pitched_notes"]:,} pitched notes,
  {c["tempo_events"]:,} tempo events

## Protocol

Every file is read once with `symusic.Score(path)` before any timing; then each tokenizer turns the loaded
Scores into token ids (maia: `io._raw_from_symusic` + `io.to_piece` + `codec.encode(notes, canonical=True)`;
MidiTok: `tokenizer.encode(score)`, preprocessing included) and the ids back into a `symusic.Score` (maia:
`codec.decode` + `io.piece_to_symusic`, without the source tempo map; MidiTok: `tokenizer.decode`).
REMI and TSD run at 12 positions per beat (`beat_res={{(0, 4): 12, (4, 12): 4}}`, maia's 12 steps per quarter),
one sequence per track (`use_programs=False`), MidiTok defaults otherwise (velocity and time-signature tokens
on; maia writes no velocity words by default). Notes/s divides the same count for every tokenizer, the pitched
notes of the loaded Scores; "from file" adds `symusic.Score(path)` to maia's encode. Encode and decode are
interleaved file by file (maia, REMI, TSD back to back on each file, times summed per tokenizer) so that load
changes on the shared machine hit all three alike; the table gives the medians of the repetitions.

## Results

{table(res)}

{summary(res)}

The 12 transpositions were timed as: per piece, `_raw_from_symusic` + `to_piece` once, then
`codec.encode(piece.notes, transpose=k)` for k = -5..+6 (k = 0 with `canonical=True`); the results are
{mismatch} (`to_piece(raw, codec, transpose=k)`, checked outside the timing).
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="folder of MIDI files (searched recursively)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions; the median is reported (default 5)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="folder for codec.md and codec.json")
    parser.add_argument("--no-write", action="store_true", help="print the results only")
    parser.add_argument("--limit", type=int, default=0, help="only the first N files (implies --no-write)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is not met")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    res = run(args)
    if res is None:
        return 0
    print()
    print(table(res))
    print()
    print(summary(res))
    if args.no_write or args.limit:
        print("\n(docs not written: --no-write or --limit)")
    else:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "codec.md").write_text(markdown(res), encoding="utf-8")
        (out / "codec.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {out / 'codec.md'} and {out / 'codec.json'}")
    if args.check and not all(g["met"] for g in res["goals"].values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
