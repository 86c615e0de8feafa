"""Benchmark `maia data build`: a cold and a cached build of piano-midi.de plus music21's classical collections.

Run from the repository root (the cold build costs about 30 CPU-minutes, 15 minutes or more on 2
cores: music21 parses ~1,800 scores, a chorale in 0.25-0.4 s, a string quartet in tens of seconds)::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_data.py

Options: ``--source SOURCE`` (repeatable; default ``/work/shared/corpora/piano-midi-de`` and
``music21:bach,mozart,beethoven,haydn,palestrina``), ``--num-proc N`` (default 2), ``--cold-runs N``
(default 1), ``--cached-runs N`` (default 3), ``--work DIR`` (where the builds and their cache go;
default a temporary folder, removed afterwards), ``--no-write`` (print only; otherwise the figures
replace the part of ``docs/data.md`` between its ``bench_data`` markers and the raw numbers go to
``docs/benchmarks/data.json``), ``--from-json`` (measure nothing; rewrite ``docs/data.md`` from that
JSON).

What is measured: each build is the command a user runs, ``maia data build SOURCE... --out OUT
--num-proc N --cache-dir CACHE --quiet`` (``maia_hf.cli.main`` in a fresh Python process, started
as a subprocess, its arguments passed in the environment), timed by the wall
clock (Python start-up and imports included; the build's own ``seconds`` from ``build_report.json``
are reported beside it). A cold build starts from an empty cache folder (every file parsed); a cached
build runs again with the same cache (nothing parsed; the token sequences come from the cache too).
The medians of the runs are reported, with the CPU time (user + system) of the command and its
worker processes, which a busy machine inflates less than the wall time. Peak memory is sampled
every 50 ms with psutil over the whole process tree (the command and its worker processes): the
largest sum of resident set sizes, and the largest single process. The corpus figures (pieces,
tokens, windows per split and composer) are those of the last build.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from machine import details as machine  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCES = ["/work/shared/corpora/piano-midi-de", "music21:bach,mozart,beethoven,haydn,palestrina"]
DOC = ROOT / "docs" / "data.md"
JSON_OUT = ROOT / "docs" / "benchmarks" / "data.json"
BEGIN, END = "<!-- bench_data: begin -->", "<!-- bench_data: end -->"


def versions() -> dict:
    names = ["datasets", "music21", "symusic", "numpy", "pyarrow", "transformers"]
    return {n: metadata.version(n) for n in names} | {"python": platform.python_version()}


class PeakMemory:
    """Samples the resident memory of a process and its children until stopped."""

    def __init__(self, pid: int, interval: float = 0.05):
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_total = 0
        self.peak_single = 0
        self.load_max = 0.0  # the highest 1-minute load average seen while the build ran
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        import psutil

        while not self._stop.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            sizes = []
            for process in processes:
                with contextlib.suppress(psutil.NoSuchProcess):
                    sizes.append(process.memory_info().rss)
            if sizes:
                self.peak_total = max(self.peak_total, sum(sizes))
                self.peak_single = max(self.peak_single, max(sizes))
            self.load_max = max(self.load_max, os.getloadavg()[0])
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()


# The child runs exactly `maia data build ARGS` (argv[0] "maia", as the console script has it), with the
# arguments passed in the environment: a `pkill -f "data build"` aimed at someone else's build on a
# shared machine killed two of these runs.
CHILD = (
    "import json, os, sys; sys.argv = ['maia']; from maia_hf.cli import main; "
    "sys.exit(main(json.loads(os.environ['MAIA_BENCH_ARGS'])))"
)


def run_build(sources, out: Path, cache: Path, num_proc: int) -> dict:
    arguments = ["data", "build", *sources, "--out", str(out), "--num-proc", str(num_proc)]
    arguments += ["--cache-dir", str(cache), "--quiet"]
    command = [sys.executable, "-c", CHILD]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    env["MAIA_BENCH_ARGS"] = json.dumps(arguments)
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory = PeakMemory(process.pid)
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    memory.stop()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    if process.returncode != 0:
        raise SystemExit(f"build failed ({process.returncode}):\n{stderr[-4000:]}")
    report = json.loads((out / "build_report.json").read_text())
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),  # user + system, the command and its (joined) worker processes
        "load_1min_max": round(memory.load_max, 1),
        "build_s": report["seconds"],
        "peak_rss_total_mib": round(memory.peak_total / 2**20),
        "peak_rss_single_mib": round(memory.peak_single / 2**20),
        "files": report["files"],
        "files_parsed": report["files_parsed"],
        "files_from_cache": report["files_from_cache"],
        "report": report,
    }


def folder_mib(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def median_of(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 1)


# ---- the Markdown written into docs/data.md ------------------------------------------------------


def machine_share(result: dict) -> str:
    """How much of the machine the cold build had: its CPU time over its wall time (2 would be all)."""
    runs = result["cold"] or result["cached"]
    share = statistics.median(r["cpu_s"] / r["wall_s"] for r in runs)
    text = (
        f"The {'cold' if result['cold'] else 'cached'} build's processes had {share:.2f} CPUs on average "
        f"(CPU time / wall time) of the {result['num_proc']} they could use"
    )
    loads = [r["load_1min_max"] for r in result["cold"] + result["cached"] if "load_1min_max" in r]
    if loads:
        text += f" (the 1-minute load average reached {max(loads)})"
    return text + ": the machine was shared with other work, so wall times are upper bounds; CPU time is steadier."


def markdown(result: dict) -> str:
    m, cold, cached, report = result["machine"], result["cold"], result["cached"], result["last_report"]
    lines = [
        f"Measured {result['date']} on {m['cpu_model']} ({m['usable_cpus']} CPUs usable, {m['memory']}), "
        f"{m['platform']}; {', '.join(f'{k} {v}' for k, v in result['versions'].items())}. "
        f"{machine_share(result)} "
        f"Written by `benchmarks/bench_data.py` (raw numbers: `docs/benchmarks/data.json`).",
        "",
        "```bash",
        f"maia data build {' '.join(result['sources'])} --out DIR --num-proc {result['num_proc']}",
        "```",
        "",
        "| build | runs | wall time (median) | build's own time | CPU time | peak memory, all processes "
        "| largest process | files parsed / from cache |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in (("cold (empty cache)", cold), ("cached (same inputs)", cached)):
        if not runs:
            continue
        lines.append(
            f"| {name} | {len(runs)} | {median_of(runs, 'wall_s')} s | "
            f"{round(statistics.median(r['build_s']['total'] for r in runs), 1)} s | {median_of(runs, 'cpu_s')} s | "
            f"{max(r['peak_rss_total_mib'] for r in runs):,} MiB | {max(r['peak_rss_single_mib'] for r in runs):,} MiB "
            f"| {runs[-1]['files_parsed']:,} / {runs[-1]['files_from_cache']:,} |"
        )
    phases = cold[-1]["build_s"] if cold else cached[-1]["build_s"]
    lines += [
        "",
        f"Every run: cold {[r['wall_s'] for r in cold]} s, cached {[r['wall_s'] for r in cached]} s (wall). "
        f"Phases of the last cold build: scan {phases['scan']} s, read (parse) {phases['read']} s, "
        f"write {phases['write']} s. The wall time includes starting Python and importing transformers, "
        f"torch and datasets. Output on disk: {result['out_mib']:,} MiB; cache: {result['cache_mib']:,} MiB.",
        "",
        f"{report['files']:,} files, {report['pieces']:,} pieces, {len(report['skipped'])} left out.",
        "",
        "Per split:",
        "",
        "| split | pieces | sequences (pieces x keys) | notes | tokens | windows |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    totals = [r for r in report["stats"] if r["composer"] == "(all)"]
    for r in totals:
        figures = (r["pieces"], r["sequences"], r["notes"], r["tokens"], r["windows"])
        lines.append(f"| {r['split']} | " + " | ".join(f"{n:,}" for n in figures) + " |")
    lines += [
        "",
        "Per composer (pieces in train / validation / test; tokens and windows of all splits, "
        "training pieces counted in all their keys):",
        "",
        "| composer | pieces | tokens | windows |",
        "|---|---:|---:|---:|",
    ]
    by_composer: dict[str, dict] = {}
    for r in report["stats"]:
        if r["composer"] == "(all)":
            continue
        entry = by_composer.setdefault(r["composer"], {"pieces": {}, "tokens": 0, "windows": 0})
        entry["pieces"][r["split"]] = r["pieces"]
        entry["tokens"] += r["tokens"]
        entry["windows"] += r["windows"]
    ordered = sorted(by_composer.items(), key=lambda kv: -sum(kv[1]["pieces"].values()))
    for composer, e in ordered:
        pieces = " / ".join(str(e["pieces"].get(s, 0)) for s in ("train", "validation", "test"))
        lines.append(f"| {composer} | {pieces} | {e['tokens']:,} | {e['windows']:,} |")
    if report["skipped"]:
        lines += ["", f"Left out ({len(report['skipped'])}):", "", "| file | reason |", "|---|---|"]
        lines += [f"| `{f}` | {r.replace('|', '/')} |" for f, r in report["skipped"]]
    if report.get("remarks", report.get("notes")):
        lines += ["", "Remarks on the build:", ""] + [f"- {n}" for n in report.get("remarks", report.get("notes"))]
    return "\n".join(lines)


def write_doc(text: str) -> None:
    doc = DOC.read_text(encoding="utf-8")
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{DOC} has no {BEGIN} ... {END} markers; add them where the figures go")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}", encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", action="append", dest="sources", metavar="SOURCE")
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--cold-runs", type=int, default=1)
    parser.add_argument("--cached-runs", type=int, default=3)
    parser.add_argument("--work", type=Path, help="folder for the builds and the cache (default: a temporary one)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--from-json", action="store_true", help="measure nothing: rewrite docs/data.md from the JSON")
    args = parser.parse_args(argv)
    if args.from_json:
        write_doc(markdown(json.loads(JSON_OUT.read_text(encoding="utf-8"))))
        print(f"wrote {DOC.relative_to(ROOT)} from {JSON_OUT.relative_to(ROOT)}")
        return 0
    sources = args.sources or DEFAULT_SOURCES
    missing = [s for s in sources if ":" not in s and not Path(s).exists()]
    if missing:
        print(f"bench_data: {', '.join(missing)} not on this machine; nothing measured")
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="maia-bench-data-"))
    work.mkdir(parents=True, exist_ok=True)
    cache, out = work / "cache", work / "corpus"
    cold, cached = [], []
    try:
        for i in range(args.cold_runs):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(run_build(sources, out, cache, args.num_proc))
            print(f"cold build {i + 1}: {cold[-1]['wall_s']} s, peak {cold[-1]['peak_rss_total_mib']} MiB", flush=True)
        for i in range(args.cached_runs):
            cached.append(run_build(sources, out, cache, args.num_proc))
            print(f"cached build {i + 1}: {cached[-1]['wall_s']} s, peak {cached[-1]['peak_rss_total_mib']} MiB")
        last = (cached or cold)[-1]
        result = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "machine": machine(),
            "versions": versions(),
            "sources": sources,
            "num_proc": args.num_proc,
            "cold": [{k: v for k, v in r.items() if k != "report"} for r in cold],
            "cached": [{k: v for k, v in r.items() if k != "report"} for r in cached],
            "out_mib": folder_mib(out),
            "cache_mib": folder_mib(cache),
            "last_report": last["report"],
        }
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    text = markdown(result)
    print(text)
    if not args.no_write:
        write_doc(text)
        JSON_OUT.parent.mkdir(parents=True, exist_ok=True)
        JSON_OUT.write_text(json.dumps(result, indent=1), encoding="utf-8")
        print(f"wrote {DOC.relative_to(ROOT)} and {JSON_OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
