"""Round-trip whole corpora through the notewise codec and write ``docs/roundtrip.md`` and ``.json``.

Run from the repository root (9 minutes on an idle 2-core machine with 2 workers; music21 parsing
dominates, and the whole-quartet files beethoven/opus74.mxl and opus18no4.mxl take 2-3 minutes each;
several times longer when other jobs share the cores)::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/roundtrip_corpora.py

Quick runs (these print the tables but write no files unless ``--out-dir`` is given)::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/roundtrip_corpora.py --only piano-midi-de
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/roundtrip_corpora.py --limit 5 --out-dir /tmp/rt

Options: ``--only NAME`` (repeatable, or comma separated; names: piano-midi-de, bach-chorales,
string-quartets, keyboard), ``--limit N`` (first N files of each corpus), ``--workers N`` (default 2),
``--out-dir DIR`` (default ``docs`` for a full run), ``--piano-midi-de DIR`` (default
``/work/shared/corpora/piano-midi-de/midis``, or ``$MAIA_PIANO_MIDI_DE``).

Every file is read with :func:`maia_hf.io.read_raw` (absolute paths; music21 parses each score from
source, nothing is cached) and every piece round-tripped with :func:`maia_hf.roundtrip.roundtrip_raw`
at the codec's default settings. The claim checked, file by file: decoding the words gives back 100 %
of the canonical notes and re-encoding them gives the same words (``RoundTripReport.lossless``).
Besides, each piece is checked independently here: the decoded notes equal the canonical notes in
canonical order, and the decoder needed no repair (no ignored ``endp``, no re-strike, no note closed
at the end). A :class:`~maia_hf.codec.MaiaError` while reading makes a file "unreadable" (reported
with its message); any other exception, or a failed check, is a bug and is listed as a failure.

The corpora:

a) piano-midi.de: every MIDI file under the folder (337 files); skipped with a message if absent.
b) Bach chorales: every score file in music21's ``corpus/bach`` except ``bwv846`` (the C major
   prelude and fugue of the Well-Tempered Clavier, counted under keyboard) and the Roman-numeral
   analyses (``.rntxt``, not scores). This is a superset of ``music21.corpus.chorales.Iterator``
   (which lists 350 distinct chorales of the Riemenschneider edition); three chorales exist both as
   ``.krn`` and ``.mxl`` and both files are read, which exercises both readers.
c) String quartets: all of ``corpus/beethoven`` (op. 18 nos. 1, 3, 4, 5; op. 59 nos. 1-3; op. 74;
   op. 132; op. 133; op. 18 no. 1 both as ``.krn`` and ``.mxl``), ``haydn`` op. 1 no. 1 and op. 74
   no. 1, ``mozart`` K. 80, 155, 156 and 458, and Robert Schumann's op. 41 no. 1.
d) Keyboard works: Bach BWV 846, C. P. E. Bach H. 186, Mozart K. 545 (first movement, exposition),
   Chopin mazurka op. 6 no. 2 (``.krn``), Clara Schumann's polonaises op. 1 nos. 1-4 and Joplin's
   Maple Leaf Rag: every solo keyboard score in music21's corpus. Songs with piano (Schubert,
   Schumann's Dichterliebe, Handel, Beach, ...) and Clara Schumann's piano trio are left out.

The gap table: on piano-midi.de, the gaps between consecutive distinct event times (onsets and
offsets) of the canonical notes, in steps (12 per quarter), and the number of wait words each
``max_wait`` W would need (a gap g needs ceil(g / W) words). The encoder also writes the lead-in
gap from step 0 to the first event; it is counted in the wait totals (and shown apart), so the
W=48 total equals the wait words of the real encoding, which is checked.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import sys
import time
import traceback
import warnings
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from machine import details  # benchmarks/machine.py

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from maia_hf.codec import CanonicalReport, NotewiseCodec  # noqa: E402
from maia_hf.errors import MaiaError  # noqa: E402
from maia_hf.io import MIDI_SUFFIXES, SCORE_SUFFIXES, read_raw, to_piece  # noqa: E402
from maia_hf.roundtrip import RoundTripReport, roundtrip_raw  # noqa: E402

DEFAULT_PIANO_MIDI_DE = Path(os.environ.get("MAIA_PIANO_MIDI_DE", "/work/shared/corpora/piano-midi-de/midis"))
CORPORA = ("piano-midi-de", "bach-chorales", "string-quartets", "keyboard")
GAP_BOUNDS = (12, 24, 36, 48, 72, 96)
WAIT_CHOICES = (12, 24, 48, 96)

# Paths relative to music21's corpus folder; a folder means every score file under it.
QUARTETS = (
    "beethoven",
    "haydn/opus1no1",
    "haydn/opus74no1",
    "mozart/k80",
    "mozart/k155",
    "mozart/k156",
    "mozart/k458",
    "schumann_robert/opus41no1",
)
KEYBOARD = (
    "bach/bwv846.mxl",
    "cpebach/h186.mxl",
    "mozart/k545",
    "chopin/mazurka06-2.krn",
    "schumann_clara/polonaise_op1n1.mxl",
    "schumann_clara/polonaise_op1n2.mxl",
    "schumann_clara/polonaise_op1n3.mxl",
    "schumann_clara/polonaise_op1n4.mxl",
    "joplin/maple_leaf_rag.mxl",
)
REPORT_FIELDS = (
    "pieces",
    "notes_read",
    "drum_notes_dropped",
    "notes_on_grid",
    "notes_exact",
    "canonical_notes",
    "canonical_restored",
    "text_stable",
    "tokens",
)


# --------------------------------------------------------------------------------------------
# Choosing the files
# --------------------------------------------------------------------------------------------


def music21_corpus_root() -> Path:
    import music21.corpus

    return Path(music21.corpus.__file__).resolve().parent


def _score_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SCORE_SUFFIXES)


def select_files(piano_midi_de: Path) -> tuple[dict[str, list[Path]], list[str]]:
    """The files of each corpus, and notes about what is missing."""
    notes: list[str] = []
    files: dict[str, list[Path]] = {}
    if piano_midi_de.is_dir():
        files["piano-midi-de"] = sorted(
            p for p in piano_midi_de.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES
        )
    else:
        notes.append(f"piano-midi-de skipped: {piano_midi_de} does not exist")
        print(f"SKIP piano-midi-de: {piano_midi_de} does not exist", flush=True)
    root = music21_corpus_root()
    files["bach-chorales"] = [p for p in _score_files(root / "bach") if p.stem != "bwv846"]
    for name, entries in (("string-quartets", QUARTETS), ("keyboard", KEYBOARD)):
        chosen = []
        for entry in entries:
            path = root / entry
            if not path.exists():
                notes.append(f"{name}: music21 corpus has no {entry}")
                print(f"MISSING {name}: music21 corpus has no {entry}", flush=True)
                continue
            chosen += _score_files(path)
        files[name] = chosen
    return files, notes


# --------------------------------------------------------------------------------------------
# The work for one file (in a worker process)
# --------------------------------------------------------------------------------------------


def _init_worker() -> None:
    warnings.simplefilter("ignore")  # music21's translation warnings would drown the progress lines


def _gaps(notes, counter: Counter, lead_in: Counter) -> None:
    if len(notes) == 0:
        return
    times = np.unique(np.concatenate([notes.start, notes.end]))
    counter.update(np.diff(times).tolist())
    if times[0] > 0:
        lead_in[int(times[0])] += 1


def run_file(task: tuple[str, str, bool]) -> dict:
    """Read one file and round-trip each of its pieces; never raises."""
    corpus, path, want_gaps = task
    codec = NotewiseCodec()
    record = {"corpus": corpus, "file": path, "status": "ok", "pieces": []}
    t0 = time.perf_counter()
    try:
        raws = read_raw(path, codec)
    except MaiaError as exc:
        record.update(status="unreadable", error=f"{type(exc).__name__}: {exc}")
        record["seconds"] = time.perf_counter() - t0
        return record
    except Exception as exc:  # a bug: maia should raise MaiaError for anything it cannot read
        record.update(status="exception", stage="read", error=f"{type(exc).__name__}: {exc}")
        record["traceback"] = traceback.format_exc()
        record["seconds"] = time.perf_counter() - t0
        return record
    record["read_seconds"] = time.perf_counter() - t0
    gaps, lead_in, wait_words = Counter(), Counter(), 0
    for raw in raws:
        piece_record = {"name": raw.name}
        try:
            report = roundtrip_raw(raw, codec)
            # Independent checks of the same claim, and of the decoder's repairs.
            piece, _ = to_piece(raw, codec)
            ids = codec.encode(piece.notes, canonical=True)
            decoded = codec.decode(ids)
            same_order = decoded.notes.as_tuples() == piece.notes.as_tuples()
            repairs = decoded.ignored_note_offs + decoded.closed_at_end + decoded.restruck
            reencoded = codec.encode(decoded.notes)
            if want_gaps:
                _gaps(piece.notes, gaps, lead_in)
                wait_words += int(((ids >= codec.wait_offset) & (ids < codec.velocity_offset)).sum())
        except Exception as exc:  # any exception after a successful read is a bug
            piece_record.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            record["status"] = "exception"
            record["stage"] = "roundtrip"
            record["pieces"].append(piece_record)
            continue
        piece_record.update({k: getattr(report, k) for k in REPORT_FIELDS})
        piece_record["changes"] = asdict(report.changes)
        piece_record["lossless"] = report.lossless
        piece_record["decoded_equals_canonical"] = same_order
        piece_record["decoder_repairs"] = {
            "ignored_note_offs": decoded.ignored_note_offs,
            "closed_at_end": decoded.closed_at_end,
            "restruck": decoded.restruck,
        }
        piece_record["reencoded_equal"] = bool(np.array_equal(reencoded, ids))
        ok = report.lossless and same_order and repairs == 0 and piece_record["reencoded_equal"]
        piece_record["ok"] = ok
        if not ok and record["status"] == "ok":
            record["status"] = "not lossless"
            if not report.lossless:
                piece_record["detail"] = _first_difference(piece.notes, decoded.notes)
        record["pieces"].append(piece_record)
    if want_gaps:
        record["gaps"] = {str(k): v for k, v in sorted(gaps.items())}
        record["lead_in"] = {str(k): v for k, v in sorted(lead_in.items())}
        record["wait_words_w48"] = wait_words
    record["seconds"] = time.perf_counter() - t0
    return record


def _first_difference(canonical, decoded) -> str:
    a, b = canonical.as_tuples(), decoded.as_tuples()
    missing = list((Counter(a) - Counter(b)).elements())[:5]
    extra = list((Counter(b) - Counter(a)).elements())[:5]
    return f"canonical notes not restored (pitch, start, end): {missing}; decoded instead: {extra}"


# --------------------------------------------------------------------------------------------
# Summing up
# --------------------------------------------------------------------------------------------


def _report_of(piece: dict) -> RoundTripReport:
    return RoundTripReport(**{k: piece[k] for k in REPORT_FIELDS}, changes=CanonicalReport(**piece["changes"]))


def summarize(records: list[dict]) -> dict:
    total = RoundTripReport(changes=CanonicalReport())
    status = Counter(r["status"] for r in records)
    for r in records:
        for piece in r["pieces"]:
            if "error" not in piece:
                total = total + _report_of(piece)
    repairs = Counter()
    for r in records:
        for piece in r["pieces"]:
            repairs.update(piece.get("decoder_repairs", {}))
    return {
        "files": len(records),
        "files_read": sum(r["status"] != "unreadable" and r.get("stage") != "read" for r in records),
        "unreadable": status["unreadable"],
        "exceptions": status["exception"],
        "not_lossless": status["not lossless"],
        **{k: getattr(total, k) for k in REPORT_FIELDS},
        "changes": asdict(total.changes),
        "lost_reasons": total.lost_reasons(),
        "lossless": total.lossless and status["exception"] == 0 and status["not lossless"] == 0,
        "decoder_repairs": dict(repairs),
        "seconds": sum(r.get("seconds", 0.0) for r in records),
    }


def gap_table(records: list[dict]) -> dict:
    gaps, lead_in, wait_words = Counter(), Counter(), 0
    for r in records:
        gaps.update({int(k): v for k, v in r.get("gaps", {}).items()})
        lead_in.update({int(k): v for k, v in r.get("lead_in", {}).items()})
        wait_words += r.get("wait_words_w48", 0)
    n = sum(gaps.values())
    bounds = [
        {"max_gap": b, "gaps": sum(c for g, c in gaps.items() if g <= b)}
        | {"share": sum(c for g, c in gaps.items() if g <= b) / n if n else 0.0}
        for b in GAP_BOUNDS
    ]
    longer = sum(c for g, c in gaps.items() if g > GAP_BOUNDS[-1])
    canonical = sum(p.get("canonical_notes", 0) for r in records for p in r["pieces"])
    waits = []
    for w in WAIT_CHOICES:
        between = sum(math.ceil(g / w) * c for g, c in gaps.items())
        lead = sum(math.ceil(g / w) * c for g, c in lead_in.items())
        tokens = 2 * canonical + between + lead
        waits.append(
            {
                "max_wait": w,
                "vocabulary": 2 * 88 + w,
                "wait_words_between_events": between,
                "wait_words_lead_in": lead,
                "wait_words": between + lead,
                "tokens": tokens,
                "wait_share_of_tokens": (between + lead) / tokens if tokens else 0.0,
            }
        )
    return {
        "gaps": n,
        "distinct_gap_values": len(gaps),
        "max_gap": max(gaps) if gaps else 0,
        "cumulative": bounds,
        "longer_than_96": longer,
        "lead_in_gaps": sum(lead_in.values()),
        "canonical_notes": canonical,
        "wait_words": waits,
        "encoder_wait_words_w48": wait_words,
        "histogram": {str(k): gaps[k] for k in sorted(gaps)},
    }


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.2f} %" if b else "-"


def _machine() -> dict:
    import music21
    import symusic

    versions = {"python": platform.python_version(), "numpy": np.__version__, "music21": music21.__version__}
    return {**details(), **versions, "symusic": getattr(symusic, "__version__", "?")}


def _failures(records: list[dict]) -> list[dict]:
    out = []
    for r in records:
        if r["status"] in ("exception", "not lossless"):
            bad = [p for p in r["pieces"] if "error" in p or not p.get("ok", True)]
            out.append(
                {"corpus": r["corpus"], "file": r["file"], "status": r["status"], "error": r.get("error")}
                | {
                    "traceback": r.get("traceback"),
                    "pieces": bad,
                }
            )
    return out


def render_markdown(result: dict) -> str:
    s = result["summary"]
    corpora = [c for c in CORPORA if c in s]
    lines = [
        "# Round trip over whole corpora",
        "",
        "Written by `benchmarks/roundtrip_corpora.py` (raw numbers: `docs/roundtrip.json`). Command:",
        "",
        "    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/roundtrip_corpora.py",
        "",
        f"Run on {result['date']} in {result['wall_seconds'] / 60:.1f} min with {result['workers']} workers; "
        f"codec settings {result['codec']}.",
        "",
        "Machine: " + "; ".join(f"{k}: {v}" for k, v in result["machine"].items()) + ".",
        "",
        "Every file is read with `maia_hf.io.read_raw` and each of its pieces round-tripped with "
        "`maia_hf.roundtrip.roundtrip_raw`. *Lossless* means: decoding the words gives back every "
        "canonical note (the notes after quantization to 12 steps per quarter, octave folding and the "
        "two same-pitch merge rules of `docs/encoding.md`) and re-encoding the decoded notes gives the "
        "same words. The script also checks that the decoded notes equal the canonical notes in order "
        "and that the decoder needed no repair.",
        "",
        "## Corpora",
        "",
    ]
    for c in corpora:
        lines.append(f"- **{c}**: {result['corpus_descriptions'][c]}")
    for note in result["notes"]:
        lines.append(f"- {note}")
    lines += ["", "## Results per corpus", ""]
    header = "| | " + " | ".join(corpora) + " | total |"
    lines += [header, "|---" * (len(corpora) + 2) + "|"]
    cols = [s[c] for c in corpora] + [result["total"]]

    def row(label, fn):
        lines.append(f"| {label} | " + " | ".join(fn(x) for x in cols) + " |")

    row("files", lambda x: f"{x['files']:,}")
    row("unreadable files", lambda x: f"{x['unreadable']:,}")
    row("files with an exception", lambda x: f"{x['exceptions']:,}")
    row("pieces", lambda x: f"{x['pieces']:,}")
    row("notes read", lambda x: f"{x['notes_read']:,}")
    row("drum notes dropped", lambda x: f"{x['drum_notes_dropped']:,}")
    row("notes on the grid", lambda x: f"{x['notes_on_grid']:,} ({_pct(x['notes_on_grid'], x['notes_read'])})")
    row("notes back exactly", lambda x: f"{x['notes_exact']:,} ({_pct(x['notes_exact'], x['notes_read'])})")
    row("canonical notes", lambda x: f"{x['canonical_notes']:,}")
    row(
        "canonical notes restored",
        lambda x: f"{x['canonical_restored']:,} ({_pct(x['canonical_restored'], x['canonical_notes'])})",
    )
    row("pieces with stable text", lambda x: f"{x['text_stable']:,} / {x['pieces']:,}")
    row("words (tokens)", lambda x: f"{x['tokens']:,}")
    row("decoder repairs", lambda x: f"{sum(x['decoder_repairs'].values()):,}")
    row("lossless", lambda x: "**yes**" if x["lossless"] else "**NO**")
    row("worker time", lambda x: f"{x['seconds'] / 60:.1f} min")

    lines += ["", "## Notes changed by each rule", "", "A note can be changed by more than one rule.", ""]
    lines += [header, "|---" * (len(corpora) + 2) + "|"]
    rules = {
        "off_grid": "off the grid (quantized)",
        "lengthened": "zero length after quantization (kept one step)",
        "folded": "outside A0..C8 (folded by octaves)",
        "merged_duplicates": "same pitch and onset as another (merged)",
        "cut_by_restrike": "re-struck while sounding (cut at the re-strike)",
    }
    for key, label in rules.items():
        row(label, lambda x, key=key: f"{x['changes'][key]:,} ({_pct(x['changes'][key], x['notes_read'])})")
    row("drum track (dropped)", lambda x: f"{x['drum_notes_dropped']:,}")

    lines += ["", "## Failures", ""]
    failures = result["failures"]
    if not failures:
        lines.append("None: every readable file round-tripped losslessly and no non-maia exception was raised.")
    for f in failures:
        lines.append(f"- `{f['file']}` ({f['corpus']}): {f['status']}" + (f": {f['error']}" if f["error"] else ""))
        for p in f["pieces"]:
            detail = p.get("error") or p.get("detail") or {k: p.get(k) for k in ("lossless", "decoder_repairs")}
            lines.append(f"  - {p['name']}: {detail}")
    lines += ["", "## Unreadable files", ""]
    unreadable = result["unreadable"]
    if not unreadable:
        lines.append("None.")
    for u in unreadable:
        lines.append(f"- `{u['file']}` ({u['corpus']}): {u['error']}")

    g = result.get("gap_table")
    if g:
        lines += [
            "",
            "## Gaps between events on piano-midi.de, and the choice of max_wait",
            "",
            f"Gaps between consecutive distinct event times (onsets and offsets) of the canonical notes of "
            f"all {s['piano-midi-de']['pieces']} pieces, in steps of 12 per quarter "
            f"({g['gaps']:,} gaps, the longest {g['max_gap']} steps):",
            "",
            "| gap at most | gaps | share |",
            "|---|---|---|",
        ]
        for b in g["cumulative"]:
            lines.append(f"| {b['max_gap']} steps ({b['max_gap'] / 12:g} q) | {b['gaps']:,} | {b['share']:.2%} |")
        lines.append(f"| longer than 96 | {g['longer_than_96']:,} | {g['longer_than_96'] / g['gaps']:.2%} |")
        lines += [
            "",
            f"Wait words needed with a longest wait of W steps (a gap g takes ceil(g / W) words), for "
            f"{g['canonical_notes']:,} canonical notes (2 words each). The {g['lead_in_gaps']} lead-in gaps "
            "(step 0 to the first event) are counted as the encoder writes them.",
            "",
            "| W | vocabulary | wait words | of which lead-in | all words | wait share |",
            "|---|---|---|---|---|---|",
        ]
        for w in g["wait_words"]:
            lines.append(
                f"| {w['max_wait']} | {w['vocabulary']} | {w['wait_words']:,} | {w['wait_words_lead_in']:,} | "
                f"{w['tokens']:,} | {w['wait_share_of_tokens']:.2%} |"
            )
        check = "equals" if g["encoder_wait_words_w48"] == g["wait_words"][2]["wait_words"] else "DIFFERS FROM"
        lines += [
            "",
            f"The W=48 count {check} the wait words of the actual encodings ({g['encoder_wait_words_w48']:,}).",
        ]
    return "\n".join(lines) + "\n"


def _display(path: str, roots: list[tuple[str, str]]) -> str:
    """A short, machine-independent name: ``music21:bach/bwv1.6.mxl`` (which read_raw also reads)."""
    for prefix, label in roots:
        if path.startswith(prefix):
            return label + path[len(prefix) :]
    return path


def _compact(record: dict) -> dict:
    """One file's record for the JSON: the figures, without what the summary already holds."""
    out = {k: v for k, v in record.items() if k not in ("pieces", "gaps", "lead_in", "read_seconds")}
    out["seconds"] = round(record.get("seconds", 0.0), 2)
    out["pieces"] = []
    for piece in record["pieces"]:
        p = {k: v for k, v in piece.items() if k not in ("decoded_equals_canonical", "reencoded_equal")}
        if p.get("name") == record["file"]:
            del p["name"]
        if "changes" in p:
            p["changes"] = {k: v for k, v in p["changes"].items() if k not in ("notes_in", "notes_out") and v}
        if not any(p.get("decoder_repairs", {}).values()):
            p.pop("decoder_repairs", None)
        if p.get("ok"):  # the independent checks passed: one flag says so
            p.pop("lossless", None)
        out["pieces"].append(p)
    return out


def _json(result: dict) -> str:
    """Indented JSON, except the per-file records: one line each."""
    head = json.dumps({k: v for k, v in result.items() if k != "files"}, indent=1)
    files = ",\n".join("  " + json.dumps(r) for r in result["files"])
    return head[:-2] + ',\n "files": [\n' + files + "\n ]\n}\n"


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

DESCRIPTIONS = {
    "piano-midi-de": "every MIDI file of piano-midi.de",
    "bach-chorales": "every score in music21's corpus/bach except BWV 846 and the .rntxt analyses "
    "(a superset of music21.corpus.chorales.Iterator; bwv277, bwv281 and bwv366 are read both as .krn and .mxl)",
    "string-quartets": "music21 corpus: " + ", ".join(QUARTETS) + " (every score file under each)",
    "keyboard": "music21 corpus: " + ", ".join(KEYBOARD),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help=f"corpus to run (repeatable): {', '.join(CORPORA)}")
    parser.add_argument("--limit", type=int, help="first N files of each corpus")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, help="where roundtrip.md/.json go (default docs/ on a full run)")
    parser.add_argument("--piano-midi-de", type=Path, default=DEFAULT_PIANO_MIDI_DE)
    args = parser.parse_args(argv)

    only = [c.strip() for o in args.only or [] for c in o.split(",") if c.strip()]
    unknown = set(only) - set(CORPORA)
    if unknown:
        parser.error(f"unknown corpus {sorted(unknown)}; choose from {', '.join(CORPORA)}")
    partial = bool(only) or args.limit is not None
    out_dir = args.out_dir or (None if partial else REPO / "docs")

    files, notes = select_files(args.piano_midi_de)
    if only:
        files = {c: f for c, f in files.items() if c in only}
    if args.limit is not None:
        files = {c: f[: args.limit] for c, f in files.items()}
    tasks = [(c, str(p), c == "piano-midi-de") for c, paths in files.items() for p in paths]
    # Largest files first, so that the two workers finish together.
    tasks.sort(key=lambda t: -os.path.getsize(t[1]))
    for c, paths in files.items():
        print(f"{c}: {len(paths)} files", flush=True)

    records: list[dict] = []
    start = time.perf_counter()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.workers, initializer=_init_worker, maxtasksperchild=25) as pool:
        for i, record in enumerate(pool.imap_unordered(run_file, tasks), start=1):
            records.append(record)
            n_notes = sum(p.get("canonical_notes", 0) for p in record["pieces"])
            flag = "" if record["status"] == "ok" else f"  <-- {record['status'].upper()}: {record.get('error', '')}"
            print(
                f"[{i}/{len(tasks)}] {time.perf_counter() - start:7.1f}s {record['corpus']:15s} "
                f"{record.get('seconds', 0):6.1f}s {len(record['pieces'])} pieces {n_notes:7d} notes "
                f"{record['file']}{flag}",
                flush=True,
            )
    wall = time.perf_counter() - start
    roots = [(f"{music21_corpus_root()}/", "music21:"), (f"{args.piano_midi_de.resolve()}/", "piano-midi-de/")]
    for record in records:
        record["file"] = _display(record["file"], roots)
        for piece in record["pieces"]:
            piece["name"] = _display(piece["name"], roots)
    records.sort(key=lambda r: (CORPORA.index(r["corpus"]), r["file"]))

    summary = {c: summarize([r for r in records if r["corpus"] == c]) for c in files}
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/roundtrip_corpora.py"
        + (" " + " ".join(argv if argv is not None else sys.argv[1:]) if partial else ""),
        "workers": args.workers,
        "wall_seconds": wall,
        "machine": _machine(),
        "codec": NotewiseCodec().config.to_dict(),
        "corpus_descriptions": {c: DESCRIPTIONS[c] for c in files},
        "notes": notes,
        "summary": summary,
        "total": summarize(records),
        "failures": _failures(records),
        "unreadable": [
            {"corpus": r["corpus"], "file": r["file"], "error": r["error"]}
            for r in records
            if r["status"] == "unreadable"
        ],
        "gap_table": gap_table([r for r in records if r["corpus"] == "piano-midi-de"])
        if "piano-midi-de" in files
        else None,
        "files": [_compact(r) for r in records],
    }
    markdown = render_markdown(result)
    print()
    print(markdown)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "roundtrip.md").write_text(markdown, encoding="utf-8")
        (out_dir / "roundtrip.json").write_text(_json(result), encoding="utf-8")
        print(f"wrote {out_dir / 'roundtrip.md'} and {out_dir / 'roundtrip.json'}")
    else:
        print("(partial run: no files written; give --out-dir to write them)")
    return 0 if result["total"]["lossless"] else 1


if __name__ == "__main__":
    sys.exit(main())
