"""Which shape to train at equal wall time: maia-seed (6 x 256) against larger shapes that still ship in 30 MB.

Every shape trains from scratch on the same corpus, recipe and seed (``recipes/configs/maia-small.yaml``:
sparse attention, FIM windows at the campaign's rate, batch 16 x 512) for the same number of minutes on one
thread. A short probe measures each shape's seconds per step first, and ``max_steps`` is set so that its
cosine schedule ends when its minutes do (so no shape is scored mid-schedule). Each run is then scored on the
same held-out windows: left-to-right bits per token and the infilling likelihood of the same gaps.

    .venv/bin/python recipes/compare_shapes.py --data ~/.cache/maia/corpora/v2 --minutes 15 \\
        --shapes 6x256 8x256 4x384 --out docs/shapes.md

A shape is LAYERSxWIDTH: heads of 32 dimensions, an inner layer 4x the width. The runs stay in ``--work``; a
shape whose run finished is scored again without training, so an interrupted comparison goes on where it was.
Writes the table to ``--out`` and the figures as JSON beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
LIMIT_MB = 30.0


def shape(text: str) -> tuple[int, int]:
    found = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not found or int(found[1]) < 1 or int(found[2]) < 32 or int(found[2]) % 32:
        raise argparse.ArgumentTypeError(f"expected LAYERSxWIDTH with the width a multiple of 32 (6x256), got {text!r}")
    return int(found[1]), int(found[2])


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}  # fmt: skip


def _train(target: Path, args, layers: int, width: int, steps: int, extra: list[str]) -> float:
    command = [sys.executable, str(REPO / "recipes" / "train_gpt2.py"), "--config", str(args.config),
               "--dataset_dir", str(args.data), "--output_dir", str(target), "--overwrite_output_dir", "true",
               "--preset", "maia-seed", "--n_layer", str(layers), "--n_embd", str(width), "--n_head", str(width // 32),
               "--n_inner", str(4 * width), "--max_steps", str(steps), "--warmup_steps", str(max(steps // 10, 1)),
               "--save_steps", "0", "--save_total_limit", "1", "--eval_steps", "0", "--eval_batches", "1",
               "--logging_steps", "1", "--num_samples", "0", *extra]  # fmt: skip
    target.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with open(target.parent / f"{target.name}.log", "a") as log:
        done = subprocess.run(command, env=_env(), stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"compare_shapes: training {target.name} failed (exit {done.returncode}); see "
                         f"{target.parent / (target.name + '.log')}")  # fmt: skip
    return time.perf_counter() - began


def _seconds_per_step(run: Path) -> float:
    """Seconds per step over the run's second half (the first steps warm up the allocator and caches)."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in records if "elapsed" in r and "loss" in r]
    first, last = timed[len(timed) // 2], timed[-1]
    return (last["elapsed"] - first["elapsed"]) / max(last["step"] - first["step"], 1)


def _score(final: Path, data: Path, windows: int) -> dict:
    import torch

    from maia_hf import MaiaForCausalLM
    from maia_hf.data import load_corpus
    from maia_hf.evaluation.infilling import infilling_nll
    from maia_hf.evaluation.likelihood import validation_nll

    torch.set_num_threads(1)
    corpus, _, tokenizer = load_corpus(data)
    tokenizer.add_fim_tokens()
    model = MaiaForCausalLM.from_pretrained(final).eval()
    size = sum(f.stat().st_size for f in final.glob("*.safetensors")) / 1e6
    return {
        "parameters": model.num_parameters(),
        "megabytes": round(size, 2),
        "left_to_right": validation_nll(model, tokenizer, corpus["validation"], max_windows=windows),
        "infilling": infilling_nll(model, tokenizer, corpus["validation"], max_windows=windows),
    }


def _table(rows: list[dict], minutes: float, machine: str) -> str:
    lines = [
        f"Every shape trained from scratch for {minutes:g} minutes on one thread ({machine}), same corpus, recipe "
        "and seed; scored on the same held-out windows of the v2 corpus's validation split.",
        "",
        "| shape | parameters | safetensors | ships (<= 30 MB) | s/step | steps | tokens | wall time | "
        "left-to-right bits/token | middle bits/token, prefix + suffix | prefix only |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    best = min(r["left_to_right"]["bits_per_token"] for r in rows)
    for r in rows:
        lr, fim = r["left_to_right"]["bits_per_token"], r["infilling"]
        mark = "**" if lr == best else ""
        lines.append(
            f"| {r['shape']} | {r['parameters'] / 1e6:.2f} M | {r['megabytes']:.1f} MB | "
            f"{'yes' if r['megabytes'] <= LIMIT_MB else 'no'} | {r['seconds_per_step']:.2f} | {r['steps']} | "
            f"{r['tokens'] / 1e6:.2f} M | {r['seconds'] / 60:.1f} min | {mark}{lr:.3f}{mark} | "
            f"{fim['bits_per_token_with_suffix']:.3f} | {fim['bits_per_token_prefix_only']:.3f} |"
        )
    lr, fim = rows[0]["left_to_right"], rows[0]["infilling"]
    lines += ["", f"Left to right: {lr['windows']} windows, {lr['tokens']:,} tokens. Infilling: {fim['gaps']} gaps "
              f"of 1-4 bars, {fim['tokens']:,} middle tokens. Wall time is the training run's, probe and scoring "
              "not counted."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a corpus built by `maia data build`")
    parser.add_argument("--config", type=Path, default=REPO / "recipes" / "configs" / "maia-small.yaml")
    parser.add_argument("--shapes", type=shape, nargs="+", default=[(6, 256), (8, 256), (4, 384)])
    parser.add_argument("--minutes", type=float, default=15.0, help="training time per shape")
    parser.add_argument("--probe-steps", type=int, default=6)
    parser.add_argument("--windows", type=int, default=128, help="validation windows scored")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "maia" / "runs" / "shape-compare")
    parser.add_argument("--out", type=Path, help="write the table here (JSON beside it)")
    args, extra = parser.parse_known_args(argv)  # the rest goes to train_gpt2.py
    if args.minutes <= 0 or args.probe_steps < 2:
        parser.error("--minutes must be > 0 and --probe-steps >= 2")
    if not (args.data / "dataset_dict.json").is_file():
        parser.error(f"--data {args.data}: not a corpus (no dataset_dict.json); build one with `maia data build`")
    from benchmarks.machine import describe

    rows = []
    for layers, width in args.shapes:
        name = f"{layers}x{width}"
        target = args.work / name
        summary = args.work / f"{name}.json"
        if summary.is_file() and (target / "final").is_dir():
            row = json.loads(summary.read_text())
        else:
            _train(args.work / f"{name}-probe", args, layers, width, args.probe_steps, extra)
            per_step = _seconds_per_step(args.work / f"{name}-probe")
            steps = max(int(args.minutes * 60 / per_step), 10)
            print(f"compare_shapes: {name}: {per_step:.2f} s a step, {steps} steps in {args.minutes:g} min", flush=True)
            _train(target, args, layers, width, steps, extra)
            records = [json.loads(line) for line in (target / "metrics.jsonl").read_text().splitlines()]
            timed = [r for r in records if "elapsed" in r]
            row = {"shape": name, "layers": layers, "width": width, "steps": steps,
                   "seconds": max(r["elapsed"] for r in timed), "seconds_per_step": _seconds_per_step(target),
                   "tokens": max(r.get("tokens", 0) for r in records)}  # fmt: skip
            summary.write_text(json.dumps(row) + "\n")
        if "left_to_right" not in row:
            row.update(_score(target / "final", args.data, args.windows))
            summary.write_text(json.dumps(row) + "\n")
        rows.append(row)
        print(f"compare_shapes: {name}: {row['left_to_right']['bits_per_token']:.3f} bits/token", flush=True)
    table = _table(rows, args.minutes, describe())
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"# Model shape at equal wall time\n\n{table}")
        args.out.with_suffix(".json").write_text(json.dumps({"minutes": args.minutes, "machine": describe(),
                                                             "rows": rows}, indent=1) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
