"""One lent GPU, one call: build the corpus, train a larger maia for a fixed time, evaluate it, hand it back.

A lent H200 gives a session 15 minutes, no network and no ``../shared``; ``recipes/gpu/README.md`` says how
to carry the corpus and the missing wheels. This script runs the whole job in about 8 minutes:

1. build the corpus (piano-midi.de and music21's Bach, Mozart, Beethoven, Haydn) with every core;
2. probe the training speed of ``recipes/gpu/h200.yaml`` for a few steps, then set ``max_steps`` so that the
   run fills ``--train-minutes`` (the cosine schedule then ends when the time does);
3. train, and score the model on the fixed validation set against the shipped model
   (``recipes/ship_model.py --compare-only``);
4. write into ``--out`` (``$OUT`` on the device machine): the weights as safetensors shards under 16 MB
   (the limit of one file that comes back), ``config.json``, ``report.json`` (both models' bits per token
   on the same validation windows) and ``summary.json`` (timings, steps, tokens).

Here it is tested on CPU with ``--tiny`` (a few chorales, a tiny shape, seconds of training):

    python recipes/gpu/train_h200.py --tiny --out /tmp/gpu-out
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "recipes" / "gpu" / "h200.yaml"
SOURCES = [str(REPO / ".gpu" / "piano-midi-de"), "music21:bach,mozart,beethoven,haydn"]
TINY_SOURCES = ["music21:bach/bwv66.6,bach/bwv269,bach/bwv1.6,bach/bwv10.7,bach/bwv2.6,bach/bwv20.11"]
TINY = ["--n_layer", "2", "--n_head", "2", "--n_embd", "32", "--n_inner", "64", "--per_device_train_batch_size", "4",
        "--sparse_backend", "sdpa", "--bf16", "false", "--eval_batches", "2"]  # fmt: skip
TINY_BUILD = ["--validation-fraction", "0.34", "--test-fraction", "0.01", "--transpositions", "1"]
SHARD = "15MB"


def _python(*args, log: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    with open(log, "a") as f:
        done = subprocess.run([sys.executable, *map(str, args)], env=env, stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
    if done.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"train_h200: {args[0]} failed (exit {done.returncode}); the end of {log}:\n{tail}")


def _seconds_per_step(run: Path) -> float:
    """Seconds per step over the probe's second half (the first steps compile and warm up)."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in records if "elapsed" in r and "loss" in r]
    first, last = timed[len(timed) // 2], timed[-1]
    return (last["elapsed"] - first["elapsed"]) / max(last["step"] - first["step"], 1)


def _pack(final: Path, out: Path) -> list[str]:
    """Weights as shards under 16 MB and config.json into ``out`` (the tokenizer is the repository's)."""
    from maia_hf import MaiaForCausalLM

    model = MaiaForCausalLM.from_pretrained(final)
    staging = out / "staging"
    model.save_pretrained(staging, max_shard_size=SHARD)  # only its weights and config travel back
    kept = []
    for entry in sorted(staging.iterdir()):
        if entry.suffix == ".safetensors" or entry.name in ("config.json", "model.safetensors.index.json"):
            shutil.move(str(entry), out / entry.name)
            kept.append(entry.name)
    shutil.rmtree(staging)
    return kept


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-out")))
    parser.add_argument("--work", type=Path, default=Path("/tmp/maia-gpu"))
    parser.add_argument("--train-minutes", type=float, default=4.5)
    parser.add_argument("--probe-steps", type=int, default=30)
    parser.add_argument("--num-proc", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tiny", action="store_true", help="a CPU check of the whole job in about a minute")
    parser.add_argument(
        "--sources", nargs="+", default=SOURCES, help="corpus sources (default: piano-midi.de + music21)"
    )
    args = parser.parse_args(argv)
    began = time.monotonic()
    import torch

    sources, extra, build = (TINY_SOURCES, TINY, TINY_BUILD) if args.tiny else (args.sources, [], [])
    minutes = 0.2 if args.tiny else args.train_minutes
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.out / "train_h200.log"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    summary = {"device": device, "torch": torch.__version__, "cores": os.cpu_count()}
    print(f"train_h200: {device}, torch {torch.__version__}, {os.cpu_count()} cores", flush=True)

    corpus = args.work / "corpus"
    if not (corpus / "dataset_dict.json").is_file():
        _python("-m", "maia_hf", "data", "build", *sources, "--out", corpus, "--num-proc", args.num_proc, "--quiet",
                *build, log=log)  # fmt: skip
    summary["corpus_seconds"] = round(time.monotonic() - began, 1)
    print(f"train_h200: corpus ready after {summary['corpus_seconds']} s", flush=True)

    common = ["recipes/train_gpt2.py", "--config", CONFIG, "--dataset_dir", corpus, *extra]
    probe = args.work / "probe"
    _python(*common, "--output_dir", probe, "--max_steps", args.probe_steps, "--overwrite_output_dir", "true",
            "--logging_steps", 1, "--eval_batches", 1, log=log)  # fmt: skip
    per_step = _seconds_per_step(probe)
    steps = max(int(minutes * 60 / per_step), 10)
    summary.update(seconds_per_step=round(per_step, 4), max_steps=steps)
    print(f"train_h200: {per_step:.3f} s a step: {steps} steps in {minutes:g} minutes", flush=True)

    run = args.work / "run"
    warmup = max(min(100, steps // 10), 1)
    trained = time.monotonic()
    _python(*common, "--output_dir", run, "--max_steps", steps, "--warmup_steps", warmup, "--overwrite_output_dir",
            "true", log=log)  # fmt: skip
    summary["train_seconds"] = round(time.monotonic() - trained, 1)
    state = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    summary["tokens"] = max(r.get("tokens", 0) for r in state)
    summary["validation"] = [r for r in state if "val_loss" in r][-1:]

    report = args.out / "report.json"
    compare = [
        "recipes/ship_model.py",
        "--model",
        run / "final",
        "--data",
        corpus,
        "--compare-only",
        "--report",
        report,
    ]
    if not args.tiny:  # v1's validation set: the pieces of these sources that the corpus holds
        compare += ["--sources", "piano-midi-de/", *(["music21:bach/"] if any("music21" in s for s in sources) else [])]
    _python(*compare, log=log)
    summary["files"] = _pack(run / "final", args.out)
    summary["total_seconds"] = round(time.monotonic() - began, 1)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
