"""Benchmark maia's sparse attention (fixed, strided) against dense causal SDPA on this machine's CPU.

Run from the repository root (about 20 minutes on 2 shared cores with the defaults):

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_sparse_attention.py

Options: ``--lengths 512 2048 4096 8192 16384``, ``--variants`` (default all of `VARIANTS`), ``--rounds 3``,
``--reps 3`` (timed calls per round; the median of all rounds x reps is reported), ``--block 128``,
``--summary 16``, ``--no-write`` (print only; otherwise the results replace the block between the
``bench:sparse-attention`` markers in docs/sparse_attention.md), ``--figures`` (only redraw the pattern
PNGs in docs/), ``--check`` (exit 1 when a goal is missed).

What is measured: one attention layer of the ``maia-seed`` shape (batch 1, 8 heads of 32 dimensions,
float32, one thread) at each length, forward only, exactly as a ``MaiaForCausalLM`` layer runs it:
the registered ``AttentionMaskInterface`` function builds the mask (once per model forward, shared by
the layers; its time is also shown alone) and the registered attention function consumes it.

* ``dense``: ``scaled_dot_product_attention(is_causal=True)``, what ``attn_implementation="sdpa"`` runs
  for an unpadded causal LM (the fused CPU kernel; no mask is materialised);
* ``fixed-sdpa`` / ``strided-sdpa``: ``sparse_backend="sdpa"``, a boolean ``[n, n]`` mask into SDPA;
* ``fixed-flex`` / ``strided-flex``: ``sparse_backend="flex"``, compiled FlexAttention with the pattern's
  ``BlockMask`` (compiled once in a warm-up call that is not timed);
* ``fixed-split`` / ``strided-split``: ``sparse_backend="split"``, the pattern's dense tiles through SDPA's
  fused CPU kernel, merged by their log-sum-exps.

Forward plus backward (``--no-backward`` leaves it out) is timed for every variant that has a CPU
backward (all but flex; the ``"sdpa"`` backend up to 8k): the same call with inputs that require
gradients, then ``backward`` of the output against a fixed random gradient.

Times are CPU time of the (single-threaded) process, ``time.process_time()``: on a shared machine whose
load exceeds its cores, wall time mostly measures the scheduler's share (wall time is shown too). Every
(variant, length) runs in a fresh subprocess, and the rounds interleave the variants, so a change of load
(and of cache contention, which CPU time does not remove) hits all of them alike.

Peak memory is measured in a process of its own (once, in the first round), the growth of its resident
set during one forward: ``/proc/self/clear_refs``
resets the kernel's high-water mark (VmHWM) after the inputs exist and the warm-up is done, then
peak = VmHWM after the call - VmRSS before it. glibc is told to serve every allocation over 64 KiB with
mmap (``MALLOC_MMAP_THRESHOLD_``), so freed tensors go back to the OS at once and reused heap pages cannot
hide a buffer (without it, fixed-flex at 8k reads 8 MiB instead of 34). The timing processes keep
glibc's usual allocator: with every large tensor mmapped and faulted in anew, the split backend (which
allocates more, smaller tensors) read about 10% slower at 8k than users get. ``tracemalloc`` sees none of
torch's allocations, which do not go through Python's allocator. ``work`` is the number of query-key
scores the kernel computes: n(n+1)/2 for dense causal, n^2 for SDPA with a mask, the visited blocks
x 128 x 128 for FlexAttention, the tiles' sizes for split; ``attended`` is the pattern's number of True
entries.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from machine import describe, details  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "sparse_attention.md"
MARKERS = ("<!-- bench:sparse-attention:start -->", "<!-- bench:sparse-attention:end -->")
VARIANTS = ("dense", "fixed-sdpa", "fixed-flex", "fixed-split", "strided-sdpa", "strided-flex", "strided-split")
LENGTHS = (512, 2048, 4096, 8192, 16384)
HEADS, HEAD_DIM = 8, 32  # maia-seed: 256 dimensions in 8 heads
GOAL_SPEEDUP_AT_8K = 3.0
# The "sdpa" backend's backward at 16k takes tens of seconds a call on this CPU: timed up to 8k only.
SDPA_BACKWARD_MAX = 8192


# --------------------------------------------------------------------------------------------
# Child process: one variant at one length
# --------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(variant: str, n: int, reps: int, block: int, summary: int, backward: bool = True, memory: bool = False):
    """One variant at one length: its times, or (``memory``) the peak growth of the resident set alone."""
    import torch

    torch.set_num_threads(1)
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, causal_mask_function

    import maia_hf  # noqa: F401  (registers the sparse attention)
    from maia_hf import MaiaConfig

    torch.manual_seed(0)
    q, k, v = (torch.randn(1, HEADS, n, HEAD_DIM) for _ in range(3))
    scale = HEAD_DIM**-0.5
    module = torch.nn.Module().eval()

    if variant == "dense":

        def make_mask():
            return None

        def attend(mask):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    else:
        pattern, backend = variant.split("-")
        name = f"maia_sparse_{pattern}"
        config = MaiaConfig(
            n_head=HEADS, n_embd=HEADS * HEAD_DIM, sparse_block=block, sparse_summary=summary, sparse_backend=backend
        )
        mask_interface = ALL_MASK_ATTENTION_FUNCTIONS[name]
        attention = AttentionInterface._global_mapping[name]

        def make_mask():
            return mask_interface(
                batch_size=1,
                q_length=n,
                kv_length=n,
                mask_function=causal_mask_function,
                attention_mask=None,
                config=config,
                device="cpu",
            )

        def attend(mask):
            return attention(module, q, k, v, mask, dropout=0.0, scaling=scale)[0]

    with torch.no_grad():
        start = time.perf_counter()
        attend(make_mask())  # warm-up; compiles FlexAttention
        warmup = time.perf_counter() - start
        if memory:
            gc.collect()
            rss_before = _status_kib("VmRSS")
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            output = attend(make_mask())
            return {"variant": variant, "n": n, "peak_mib": (_status_kib("VmHWM") - rss_before) / 1024}
        mask_times, attend_times, wall_times = [], [], []
        for _ in range(reps):
            wall, start = time.perf_counter(), time.process_time()
            mask = make_mask()
            built = time.process_time()
            attend(mask)
            mask_times.append(built - start)
            attend_times.append(time.process_time() - built)
            wall_times.append(time.perf_counter() - wall)
            del mask

    backward_times = []
    if backward and not variant.endswith("flex") and (n <= SDPA_BACKWARD_MAX or not variant.endswith("sdpa")):
        q, k, v = (t.requires_grad_() for t in (q, k, v))
        grad = torch.randn(1, n, HEADS, HEAD_DIM)
        for rep in range(reps + 1):  # the first is a warm-up
            start = time.process_time()
            output = attend(make_mask())
            if output.shape[1] != n:  # dense gives (B, H, n, d), the registered functions (B, n, H, d)
                output = output.transpose(1, 2)
            output.backward(grad)
            if rep:
                backward_times.append(time.process_time() - start)
            q.grad = k.grad = v.grad = None
            del output

    result = {
        "variant": variant,
        "train_s": backward_times,
        "n": n,
        "mask_s": mask_times,
        "attention_s": attend_times,
        "forward_s": [a + b for a, b in zip(mask_times, attend_times, strict=True)],
        "wall_s": wall_times,
        "warmup_s": warmup,
    }
    if variant.endswith("split"):
        result["work"] = split_work(variant, n, block, summary)
    elif variant.endswith("flex"):
        block_mask = make_mask().block_mask
        visited = int(block_mask.kv_num_blocks.sum() + block_mask.full_kv_num_blocks.sum())
        result["work"] = visited * block_mask.BLOCK_SIZE[0] * block_mask.BLOCK_SIZE[1]
    else:
        result["work"] = n * (n + 1) // 2 if variant == "dense" else n * n
    return result


# --------------------------------------------------------------------------------------------
# Parent: rounds of subprocesses, the table, the doc
# --------------------------------------------------------------------------------------------


def split_work(variant: str, n: int, block: int, summary: int) -> int:
    """Scores the split backend's tiles compute (the sequence padded to whole blocks of ``l``)."""
    blocks = -(-n // block)
    own = blocks * block * (block + 1) // 2  # each block, causal
    if variant.startswith("fixed"):
        return own + sum(block * b * summary for b in range(1, blocks))  # each block x the summaries before it
    previous = (blocks - 1) * block * (block - 1) // 2  # the rest of the previous block
    columns = block * (blocks - 1) * blocks // 2  # positions equal modulo l, strictly causal
    return own + previous + columns


def attended_pairs(variant: str, n: int, block: int, summary: int) -> int:
    """True entries of the pattern (dense causal for ``dense``), from each row's count."""
    rows = range(n)
    if variant == "dense":
        return n * (n + 1) // 2
    if variant.startswith("fixed"):
        return sum(i % block + 1 + (i // block) * summary for i in rows)
    return sum(min(i + 1, block) + i // block for i in rows)


def run_child(variant: str, n: int, args, memory: bool = False) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    if memory:  # times are taken with glibc's usual allocator, which reuses freed memory as users get it
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    command = [sys.executable, __file__, "--child", variant, str(n), "--reps", str(args.reps)]
    command += ["--memory"] if memory else []
    command += ["--block", str(args.block), "--summary", str(args.summary)]
    command += ["--no-backward"] if args.no_backward else []
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{variant} at {n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarise(results: list[dict], args) -> dict:
    table = {}
    for variant in args.variants:
        for n in args.lengths:
            runs = [r for r in results if r["variant"] == variant and r["n"] == n]
            if not runs:
                continue
            table[variant, n] = {
                "forward_ms": 1000 * statistics.median(t for r in runs for t in r["forward_s"]),
                "wall_ms": 1000 * statistics.median(t for r in runs for t in r["wall_s"]),
                "mask_ms": 1000 * statistics.median(t for r in runs for t in r["mask_s"]),
                "train_ms": 1000 * statistics.median(t for r in runs for t in r["train_s"])
                if runs[0]["train_s"]
                else None,
                "peak_mib": statistics.median(r["peak_mib"] for r in runs if "peak_mib" in r),
                "work": runs[0]["work"],
                "attended": attended_pairs(variant, n, args.block, args.summary),
                "warmup_s": max(r["warmup_s"] for r in runs),
            }
    return table


def growth(table, variant, key, lengths) -> str:
    """Exponent of n between the two longest lengths (1 = linear, 1.5 = n sqrt n, 2 = quadratic)."""
    a, b = lengths[-2], lengths[-1]
    if (variant, a) not in table or (variant, b) not in table or table[variant, a][key] <= 0:
        return "-"
    return f"{math.log(table[variant, b][key] / table[variant, a][key]) / math.log(b / a):.2f}"


def render(table, args, started: str, load: tuple) -> tuple[str, list[str]]:
    lines = [
        f"Measured {started} on {describe()}, L2 {details()['l2_cache']}; {details()['platform']}; "
        f"torch {_torch_version()}, one thread; load average at start "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (the cores are shared). Fixed: l = {args.block}, "
        f"c = {args.summary}; strided: l = {args.block}. Median of {args.rounds} rounds x {args.reps} calls.",
        "",
        "| tokens | variant | forward, CPU ms | of which mask | vs dense | wall ms | peak MiB | forward + backward, "
        "CPU ms | vs dense | work (scores) | attended |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in args.lengths:
        dense = table.get(("dense", n))
        for variant in args.variants:
            row = table.get((variant, n))
            if row is None:
                continue
            speedup = f"{dense['forward_ms'] / row['forward_ms']:.2f}x" if dense else "-"
            train, train_speedup = "-", "-"
            if row["train_ms"] is not None:
                train = f"{row['train_ms']:,.1f}"
                if dense and dense["train_ms"] is not None:
                    train_speedup = f"{dense['train_ms'] / row['train_ms']:.2f}x"
            lines.append(
                f"| {n:,} | {variant} | {row['forward_ms']:,.1f} | {row['mask_ms']:,.1f} | {speedup} | "
                f"{row['wall_ms']:,.1f} | {row['peak_mib']:,.1f} | {train} | {train_speedup} | {row['work']:,} | "
                f"{row['attended']:,} |"
            )
    lines += ["", f"Growth exponent of n from {args.lengths[-2]:,} to {args.lengths[-1]:,} tokens:", ""]
    lines += ["| variant | time | peak memory | work |", "|---|---:|---:|---:|"]
    for variant in args.variants:
        lines.append(
            f"| {variant} | {growth(table, variant, 'forward_ms', args.lengths)} | "
            f"{growth(table, variant, 'peak_mib', args.lengths)} | {growth(table, variant, 'work', args.lengths)} |"
        )
    verdicts = goals(table)
    lines += ["", *[f"- {v}" for v in verdicts]]
    warmups = {v: max(r["warmup_s"] for (vv, _), r in table.items() if vv == v) for v in args.variants if "flex" in v}
    if warmups:
        slowest = ", ".join(f"{v} {s:.0f} s" for v, s in warmups.items())
        lines += [f"- First call per process, compiling FlexAttention (not in the times above): up to {slowest}."]
    return "\n".join(lines), verdicts


def goals(table) -> list[str]:
    """The issue's goals, for each fixed backend that ran: >= 3x dense at 8k, memory no faster than n sqrt n."""
    out = []
    for variant in ("fixed-split", "fixed-flex"):
        if ("dense", 8192) in table and (variant, 8192) in table:
            speedup = table["dense", 8192]["forward_ms"] / table[variant, 8192]["forward_ms"]
            met = "met" if speedup >= GOAL_SPEEDUP_AT_8K else "NOT met"
            out.append(
                f"Goal fixed >= {GOAL_SPEEDUP_AT_8K:.0f}x faster than dense at 8k, {variant}: {speedup:.2f}x, {met}."
            )
        lengths = sorted(n for v, n in table if v == variant)
        if len(lengths) >= 2:
            a, b = lengths[-2], lengths[-1]
            mem = math.log(table[variant, b]["peak_mib"] / table[variant, a]["peak_mib"]) / math.log(b / a)
            work = math.log(table[variant, b]["work"] / table[variant, a]["work"]) / math.log(b / a)
            met = "met" if mem <= 1.5 + 0.1 else "NOT met"
            out.append(
                f"Goal memory growing like n sqrt(n) (exponent <= 1.5) for {variant}, {a:,} -> {b:,}: peak memory "
                f"exponent {mem:.2f}, {met}; computed scores exponent {work:.2f}."
            )
    return out


def _torch_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("torch")


def write_doc(text: str) -> None:
    doc = DOC.read_text() if DOC.exists() else f"# Sparse attention\n\n{MARKERS[0]}\n{MARKERS[1]}\n"
    head, rest = doc.split(MARKERS[0], 1)
    _, tail = rest.split(MARKERS[1], 1)
    DOC.write_text(f"{head}{MARKERS[0]}\n{text}\n{MARKERS[1]}{tail}")


def draw_patterns(out_dir: Path) -> list[Path]:
    """PNG drawings of the fixed, fixed per-head and strided patterns (32 tokens, l = 8, c = 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from maia_hf.sparse_attention import fixed_pattern_mask, strided_pattern_mask

    n, l, c = 32, 8, 2
    figures = {
        "sparse_fixed.png": [(f"fixed, l = {l}, c = {c}", fixed_pattern_mask(n, l, c))],
        "sparse_fixed_per_head.png": [
            (f"fixed per head, head {h}", fixed_pattern_mask(n, l, c, head=h)) for h in range(l // c)
        ],
        "sparse_strided.png": [(f"strided, l = {l}", strided_pattern_mask(n, l))],
    }
    written = []
    for filename, panels in figures.items():
        fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.8), squeeze=False)
        for ax, (title, mask) in zip(axes[0], panels, strict=True):
            ax.imshow(mask.numpy(), cmap="Blues", vmin=0, vmax=1.4, interpolation="nearest")
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("key position j")
            ax.set_ylabel("query position i")
            ax.set_xticks(range(0, n, l))
            ax.set_yticks(range(0, n, l))
            ax.set_xticks([x - 0.5 for x in range(0, n + 1, l)], minor=True)
            ax.set_yticks([y - 0.5 for y in range(0, n + 1, l)], minor=True)
            ax.grid(which="minor", color="0.6", linewidth=0.6)
            ax.tick_params(which="minor", length=0)
        fig.tight_layout()
        path = out_dir / filename
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--summary", type=int, default=16)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--no-backward", action="store_true", help="time the forward pass only")
    parser.add_argument("--figures", action="store_true", help="only redraw the pattern PNGs")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        variant, n = args.child[0], int(args.child[1])
        child = measure(variant, n, args.reps, args.block, args.summary, not args.no_backward, args.memory)
        print(json.dumps(child))
        return 0
    if args.figures:
        for path in draw_patterns(DOC.parent):
            print("wrote", path.relative_to(ROOT))
        return 0

    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()
    results = []
    for round_index in range(args.rounds):
        for n in args.lengths:
            for variant in args.variants:
                result = run_child(variant, n, args)
                if round_index == 0:  # peak memory does not vary with the load: measured once
                    result["peak_mib"] = run_child(variant, n, args, memory=True)["peak_mib"]
                results.append(result)
                print(
                    f"round {round_index + 1}/{args.rounds}  {n:>6,}  {variant:<13} "
                    f"forward {1000 * statistics.median(result['forward_s']):>10,.1f} ms CPU "
                    f"{1000 * statistics.median(result['wall_s']):>10,.1f} ms wall  "
                    + (f"peak {result['peak_mib']:>8,.1f} MiB" if "peak_mib" in result else "")
                    + (
                        f"  fwd+bwd {1000 * statistics.median(result['train_s']):>10,.1f} ms"
                        if result["train_s"]
                        else ""
                    ),
                    flush=True,
                )
    table = summarise(results, args)
    text, verdicts = render(table, args, started, load)
    print()
    print(text)
    if not args.no_write:
        write_doc(text)
        print("\nwrote", DOC.relative_to(ROOT))
    if args.check and any("NOT met" in v for v in verdicts):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
