"""Training speed of the whole maia-seed GPT on CPU: dense attention against the fixed sparse pattern.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_sparse_training.py [--lengths 512 2048 4096 8192]

One training step (forward, backward, AdamW step) of the ``maia-seed`` shape (6 layers, 8 heads, 256
dimensions) on random tokens, with the same number of tokens per step at every window length (8,192:
16 x 512, 4 x 2,048, 2 x 4,096, 1 x 8,192), so that only the attention's share changes with the length.
Variants:

* ``dense``: ``attn_implementation="sdpa"``, causal (the fused CPU kernel);
* ``fixed-sdpa``: ``maia_sparse_fixed`` (l = 128, c = 16) with ``sparse_backend="sdpa"`` (a boolean mask);
* ``fixed-split``: the same pattern with ``sparse_backend="split"`` (its dense pieces, forward and backward).

Each (variant, length) runs in a fresh single-threaded process; ``--rounds`` interleave the variants; the
median CPU time (``time.process_time()``) of all timed steps is reported, as tokens per CPU second and as a
ratio to dense at the same length. Results go to docs/benchmarks/sparse_training.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from machine import describe  # benchmarks/machine.py

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "benchmarks" / "sparse_training.json"
REPORT = REPO / "docs" / "benchmarks" / "sparse_training.md"
VARIANTS = ("dense", "fixed-sdpa", "fixed-split")
LENGTHS = (512, 2048, 4096, 8192)
TOKENS_PER_STEP = 8192


def measure(variant: str, length: int, steps: int) -> dict:
    """Child process: ``steps`` timed training steps after one warm-up step."""
    import torch

    torch.set_num_threads(1)
    from maia_hf import MaiaConfig, MaiaForCausalLM

    if variant == "dense":
        attention = {"attn_implementation": "sdpa"}
    else:
        attention = {
            "attn_implementation": "maia_sparse_fixed",
            "sparse_block": 128,
            "sparse_summary": 16,
            "sparse_backend": variant.split("-")[1],
        }
    config = MaiaConfig.from_preset(
        "maia-seed", n_positions=length, attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0, **attention
    )
    torch.manual_seed(0)
    model = MaiaForCausalLM(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(4, config.vocab_size, (max(TOKENS_PER_STEP // length, 1), length))
    times = []
    for step in range(steps + 1):
        start = time.process_time()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:  # the first step is a warm-up
            times.append(time.process_time() - start)
    return {"variant": variant, "length": length, "tokens": ids.numel(), "seconds": times, "loss": float(loss)}


def run_child(variant: str, length: int, steps: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    command = [sys.executable, __file__, "--child", variant, str(length), "--steps", str(steps)]
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(f"{variant} at {length} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def render(rows: list[dict], header: str) -> str:
    lines = [
        header,
        "",
        "| window | batch | variant | step, CPU s | tokens per CPU s | vs dense |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    dense = {r["length"]: r for r in rows if r["variant"] == "dense"}
    for row in rows:
        ratio = dense[row["length"]]["step_s"] / row["step_s"] if row["length"] in dense else None
        lines.append(
            f"| {row['length']:,} | {row['tokens'] // row['length']} | {row['variant']} | {row['step_s']:.2f} | "
            f"{row['tokens_per_s']:,.0f} | {f'{ratio:.2f}x' if ratio else '-'} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per process")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "LENGTH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.steps)))
        return 0

    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()
    results = []
    for round_index in range(args.rounds):
        for length in args.lengths:
            for variant in args.variants:
                result = run_child(variant, length, args.steps)
                results.append(result)
                step = statistics.median(result["seconds"])
                print(
                    f"round {round_index + 1}/{args.rounds}  {length:>6,}  {variant:<12} {step:7.2f} s/step", flush=True
                )
    rows = []
    for length in args.lengths:
        for variant in args.variants:
            runs = [r for r in results if r["variant"] == variant and r["length"] == length]
            step = statistics.median(t for r in runs for t in r["seconds"])
            rows.append(
                {"variant": variant, "length": length, "tokens": runs[0]["tokens"], "step_s": step,
                 "tokens_per_s": runs[0]["tokens"] / step}
            )  # fmt: skip
    header = (
        f"Measured {started} on {describe()}, one thread; load average at start {load[0]:.1f}. maia-seed "
        f"(6 x 256, 8 heads), {TOKENS_PER_STEP:,} tokens a step, fixed l = 128, c = 16, dropout 0. Median of "
        f"{args.rounds} rounds x {args.steps} steps, each (variant, window) in a fresh process."
    )
    text = render(rows, header)
    print()
    print(text)
    if not args.no_write:
        RESULTS.write_text(json.dumps({"started": started, "machine": describe(), "rows": rows}, indent=2) + "\n")
        REPORT.write_text(
            "# Training speed on CPU: dense against fixed sparse attention\n\n"
            "Written by `benchmarks/bench_sparse_training.py` (see its docstring; `docs/sparse_attention.md` "
            "explains the backends).\n\n" + text + "\n"
        )
        print("\nwrote", REPORT.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
