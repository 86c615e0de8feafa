"""bf16 autocast against fp32 at equal steps: one recipe run in each, same model, seed and batches.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_bf16.py --dataset_dir DIR [--steps 400] [--seeds 0 1]

Before the recipe turns bf16 autocast on (where the hardware runs it fast), it must reach the validation loss
fp32 reaches at the same steps. Each run is `recipes/train_gpt2.py` with the model of
`recipes/configs/tiny.yaml` (2 layers, 64 wide) on the corpus given, `--bf16 false` then `--bf16 true`, with
the same seed (so the same initial weights and the same windows in the same order), evaluated every
`--eval_every` steps on the same validation windows. Runs of one precision from different seeds differ too (at
this size the loss falls in steps whose timing varies), so the same pair is run for each of `--seeds`: bf16
matches fp32 when its gap to fp32 is within fp32's own spread across seeds. Autocast keeps fp32 master weights
and an fp32 AdamW: this checks the numerics of the bf16 forward and backward, not their speed. On a CPU
without bf16 units the bf16 run is emulated, several times slower, hence the small model. Without
--dataset_dir a corpus of the music21 Bach scores is built first. Results go to docs/benchmarks/training.md
(section bf16-quality) and docs/benchmarks/training_bf16.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_training import REPO, write_section  # benchmarks/bench_training.py
from machine import describe  # benchmarks/machine.py

RESULTS = REPO / "docs" / "benchmarks" / "training_bf16.json"
CONFIG = REPO / "recipes" / "configs" / "tiny.yaml"


def run(dataset_dir: str, bf16: bool, seed: int, args, out: Path) -> dict:
    """One recipe run; its validation losses by step, its last logged training loss and its wall time."""
    command = [
        sys.executable, str(REPO / "recipes" / "train_gpt2.py"), "--config", str(CONFIG), "--dataset_dir", dataset_dir,
        "--output_dir", str(out), "--per_device_train_batch_size", str(args.batch_size), "--max_steps", str(args.steps),
        "--warmup_steps", "20", "--learning_rate", "0.003", "--eval_steps", str(args.eval_every),
        "--eval_batches", str(args.eval_batches), "--save_steps", "0", "--num_samples", "0", "--logging_steps", "10",
        "--bf16", "true" if bf16 else "false", "--seed", str(seed),
    ]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"bench_bf16: the {'bf16' if bf16 else 'fp32'} run failed:\n{done.stderr[-3000:]}")
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    validation = {r["step"]: r["val_loss"] for r in lines if "val_loss" in r}
    training = [r for r in lines if "loss" in r]
    return {"validation": validation, "train_loss": training[-1]["loss"], "train_step": training[-1]["step"],
            "seconds": seconds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", help="a corpus built by `maia data build` (default: the music21 Bach scores)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--eval_every", type=int, default=100)
    parser.add_argument("--eval_batches", type=int, default=16, help="validation batches at each evaluation")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="one fp32 and one bf16 run for each")
    args = parser.parse_args()
    if args.steps < 1 or not 1 <= args.eval_every <= args.steps:
        parser.error("need --steps >= 1 and 1 <= --eval_every <= --steps")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.dataset_dir:
            dataset_dir = args.dataset_dir
        else:
            from bench_training import small_corpus

            dataset_dir = small_corpus(work)
        runs = {}
        for seed in args.seeds:
            for precision in ("fp32", "bf16"):
                runs[precision, seed] = run(dataset_dir, precision == "bf16", seed, args, work / f"{precision}-{seed}")
                print(f"seed {seed}, {precision}: {runs[precision, seed]['validation']}", flush=True)
    steps = sorted(runs["fp32", args.seeds[0]]["validation"])
    header = " | ".join(f"fp32 / bf16, seed {seed}" for seed in args.seeds)
    lines = [f"| step | {header} | bf16 - fp32 (mean over seeds) | fp32's spread across seeds |",
             "|---:|" + "---:|" * (len(args.seeds) + 2)]  # fmt: skip
    for step in steps:
        pairs = [(runs["fp32", s]["validation"][step], runs["bf16", s]["validation"][step]) for s in args.seeds]
        cells = " | ".join(f"{a:.4f} / {b:.4f}" for a, b in pairs)
        gap = statistics.mean(b - a for a, b in pairs)
        spread = max(a for a, _ in pairs) - min(a for a, _ in pairs)
        lines.append(
            f"| {step} | {cells} | {gap:+.4f} | {spread:.4f} |"
            if len(pairs) > 1
            else f"| {step} | {cells} | {gap:+.4f} | |"
        )
    wall = statistics.median(runs["bf16", s]["seconds"] / runs["fp32", s]["seconds"] for s in args.seeds)
    table = "\n".join(lines) + f"\n\nWall time of a bf16 run against its fp32 pair (median): {wall:.2f}x."
    print(table)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": describe(), "cpu_capability": capability,
              "steps": args.steps, "batch_size": args.batch_size, "seeds": args.seeds,
              "runs": {f"{p}-seed{s}": r for (p, s), r in runs.items()}}  # fmt: skip
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    corpus = args.dataset_dir or "the music21 Bach scores"
    write_section(
        "bf16-quality",
        "## bf16 autocast against fp32 at equal steps\n\n"
        f"Measured by `benchmarks/bench_bf16.py` on {result['date']}: {result['machine']} (torch's CPU capability "
        f"{capability}), one thread; `recipes/configs/tiny.yaml`'s model (2 layers, 64 wide), batches of "
        f"{args.batch_size} windows from `{corpus}`, {args.steps} steps; each pair the same seed, weights and batches, "
        f"{args.eval_batches} validation batches at each evaluation.\n\n" + table,
    )


if __name__ == "__main__":
    main()
