"""The original maia's grid: sequence length x batch size, with throughput and validation loss per cell.

    python recipes/grid_search.py --config recipes/configs/maia-seed.yaml \
        --seq_lens 128,256,512 --batch_sizes 8,16,32 --tokens 2000000 [--key value ...]
    python recipes/grid_search.py --config recipes/configs/tiny.yaml --seq_lens 64,128 --batch_sizes 4,8 --max_steps 20

Every cell is one run of `recipes/train_gpt2.py` (a subprocess, so cells do not share memory or
threads), from the same recipe and seed. By default each cell gets the same token budget (`--tokens`:
steps = tokens / (seq_len x batch)), so validation losses compare like with like; `--max_steps` gives
every cell the same number of steps instead. The corpus is cut once per sequence length (the parsed
files are cached, so later cuts are fast). Extra `--key value` pairs go to every run; an unknown key is an
error before anything runs. Prefix the runs with a launcher (`--launcher "accelerate launch"`) to
train each cell on several processes.

Writes OUT/grid.json, OUT/grid.md (the table) and OUT/grid.png (two heat maps); prints the table.
A cell that fails (out of memory, say) is reported as failed and the grid goes on.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the recipe every cell starts from (recipes/configs/*.yaml)")
    parser.add_argument("--seq_lens", type=int_list, default=[128, 256, 512], help="comma-separated window lengths")
    parser.add_argument("--batch_sizes", type=int_list, default=[8, 16, 32], help="comma-separated batch sizes")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--tokens", type=int, default=1_000_000, help="training tokens per cell (default)")
    budget.add_argument("--max_steps", type=int, help="optimizer steps per cell instead of a token budget")
    parser.add_argument("--out", default="runs/grid", help="where the cells, the corpora and the table go")
    parser.add_argument("--launcher", default="", help='e.g. "accelerate launch --num_processes 2"')
    return parser.parse_known_args(argv)


def steps_for(args: argparse.Namespace, seq_len: int, batch: int) -> int:
    return args.max_steps if args.max_steps else max(1, args.tokens // (seq_len * batch))


def build_corpora(data, seq_lens: list[int], out: Path) -> dict[int, Path]:
    """One corpus per window length, from the recipe's data settings (its `DataArguments`)."""
    from maia_hf.data import build_dataset

    corpora = {}
    for seq_len in seq_lens:
        path = out / f"data-{seq_len}"
        if not (path / "dataset_dict.json").exists():
            build_dataset(
                data.data_sources, path, seq_len=seq_len, overlap=data.overlap, transpositions=data.transpositions,
                validation_fraction=data.validation_fraction, test_fraction=data.test_fraction,
                num_proc=data.num_proc,
            )  # fmt: skip
        corpora[seq_len] = path
    return corpora


def summarise(run: Path) -> dict:
    """Steady-state throughput (tokens/s after the first logged window) and the final validation figures."""
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    train = [r for r in lines if "loss" in r and "elapsed" in r]
    val = [r for r in lines if "val_loss" in r]
    if len(train) >= 2:
        first, last = train[0], train[-1]
        tps = (last["tokens"] - first["tokens"]) / max(last["elapsed"] - first["elapsed"], 1e-9)
    else:
        tps = train[-1]["tokens_per_second"] if train else float("nan")
    result = {"tokens_per_second": tps, "train_loss": train[-1]["loss"] if train else float("nan")}
    if val:
        result.update(val_loss=val[-1]["val_loss"], val_bits_per_token=val[-1]["val_bits_per_token"])
    return result


def run_cell(args, extra, corpus: Path, seq_len: int, batch: int, out: Path) -> dict:
    steps = steps_for(args, seq_len, batch)
    cell_dir = out / f"seq{seq_len}-batch{batch}"
    command = [
        *shlex.split(args.launcher), *([] if args.launcher else [sys.executable]), str(HERE / "train_gpt2.py"),
        "--config", args.config, *extra,
        "--dataset_dir", str(corpus), "--seq_len", str(seq_len), "--per_device_train_batch_size", str(batch),
        "--max_steps", str(steps), "--warmup_steps", str(max(1, steps // 10)), "--output_dir", str(cell_dir),
        "--eval_steps", "0", "--save_steps", "0", "--num_samples", "0", "--logging_steps", str(max(1, steps // 10)),
    ]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    cell = {"seq_len": seq_len, "batch_size": batch, "steps": steps, "tokens": steps * seq_len * batch}
    cell["wall_seconds"] = time.perf_counter() - began
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {**cell, "failed": reason[-300:]}
    return {**cell, **summarise(cell_dir)}


def table(cells: list[dict]) -> str:
    rows = [
        "| seq len | batch | steps | tokens | tokens/s | train loss | val loss (nats) | val bits/token |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        head = f"| {c['seq_len']} | {c['batch_size']} | {c['steps']} | {c['tokens']:,} |"
        if "failed" in c:
            rows.append(f"{head} failed: {c['failed']} | | | |")
            continue
        val = f"{c['val_loss']:.4f} | {c['val_bits_per_token']:.3f}" if "val_loss" in c else "- | -"
        rows.append(f"{head} {c['tokens_per_second']:,.0f} | {c['train_loss']:.4f} | {val} |")
    return "\n".join(rows)


def plot(cells: list[dict], seq_lens: list[int], batches: list[int], out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "tokens_per_second", "tokens/s"), (axes[1], "val_loss", "validation loss")):
        grid = np.full((len(seq_lens), len(batches)), np.nan)
        for c in cells:
            if key in c:
                grid[seq_lens.index(c["seq_len"]), batches.index(c["batch_size"])] = c[key]
        image = ax.imshow(grid, cmap="viridis" if key == "tokens_per_second" else "viridis_r")
        ax.set_xticks(range(len(batches)), [str(b) for b in batches])
        ax.set_yticks(range(len(seq_lens)), [str(s) for s in seq_lens])
        ax.set_xlabel("batch size")
        ax.set_ylabel("sequence length")
        ax.set_title(title)
        for (i, j), value in np.ndenumerate(grid):
            if not math.isnan(value):
                ax.text(j, i, f"{value:,.0f}" if key == "tokens_per_second" else f"{value:.3f}", ha="center",
                        va="center", color="white", fontsize=8)  # fmt: skip
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from maia_hf.errors import MaiaError
    from maia_hf.training import parse_arguments

    args, extra = parse(argv)
    out = Path(args.out)
    try:
        _, data, _ = parse_arguments(["--config", args.config, *extra])  # unknown keys fail here, before any run
        out.mkdir(parents=True, exist_ok=True)
        corpora = build_corpora(data, args.seq_lens, out)
    except MaiaError as exc:
        print(f"grid_search: error: {exc}", file=sys.stderr)
        return 2
    cells = []
    for seq_len in args.seq_lens:
        for batch in args.batch_sizes:
            cell = run_cell(args, extra, corpora[seq_len], seq_len, batch, out)
            cells.append(cell)
            status = "failed" if "failed" in cell else f"{cell['tokens_per_second']:,.0f} tokens/s"
            print(f"seq_len {seq_len}, batch {batch}: {status}", flush=True)
    text = table(cells)
    print(text)
    record = {"config": args.config, "extra": extra, "threads": os.environ.get("OMP_NUM_THREADS"), "cells": cells}
    (out / "grid.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "grid.md").write_text(f"# Grid search: `{args.config}` {' '.join(extra)}\n\n{text}\n")
    plot(cells, args.seq_lens, args.batch_sizes, out / "grid.png")
    return 1 if all("failed" in c for c in cells) else 0


if __name__ == "__main__":
    sys.exit(main())
