"""Training throughput of the recipe against a minimal plain-PyTorch loop: same model, same batches.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_training.py --dataset_dir DIR [--repeats 3]

The recipe is `recipes/train_gpt2.py` (Accelerate, the scheduler, clipping, the resumable data order,
metrics), run with evaluation, checkpoints and samples off. The plain loop is what a user would write by
hand: AdamW, forward, backward, clipping, step, on the very same windows in the same order. Each runs in
a fresh process, alternately, `--repeats` times; throughput counts real (unpadded) tokens from the end of
the `--warmup` steps to the last step. The goal (issue #5): the recipe costs at most 10% more time.
Without --dataset_dir a corpus of the music21 Bach scores is built first (cached after the first parse). Results go to
docs/benchmarks/training.{md,json}.
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

from machine import describe  # benchmarks/machine.py

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "benchmarks" / "training.json"
REPORT = REPO / "docs" / "benchmarks" / "training.md"
SETTINGS_RESULTS = REPO / "docs" / "benchmarks" / "training_settings.json"
CONFIG = REPO / "recipes" / "configs" / "maia-seed.yaml"


def plain_loop(dataset_dir: str, batch_size: int, steps: int, warmup: int, out: str) -> None:
    """The hand-written loop (run in its own process by the benchmark)."""
    import torch

    from maia_hf.data import load_corpus
    from maia_hf.training import build_model, collate, parse_arguments

    model_args, data_args, train_args = parse_arguments(["--config", str(CONFIG)])
    corpus, _, tokenizer = load_corpus(dataset_dir)
    torch.manual_seed(train_args.seed)
    model = build_model(model_args, tokenizer, data_args.seq_len)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_args.learning_rate, weight_decay=0.1)
    train = corpus["train"].with_format("python")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(train_args.seed)).tolist()
    model.train()
    tokens, began = 0, None
    for step in range(steps):
        rows = train[order[step * batch_size : (step + 1) * batch_size]]["input_ids"]
        batch = collate(rows, data_args.seq_len, tokenizer.pad_token_id)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step + 1 == warmup:
            began = time.perf_counter()
        elif step + 1 > warmup:
            tokens += int(batch["attention_mask"].sum())
    seconds = time.perf_counter() - began
    Path(out).write_text(json.dumps({"tokens": tokens, "seconds": seconds, "loss": float(loss)}))


def recipe_run(dataset_dir: str, batch_size: int, steps: int, warmup: int, work: Path) -> dict:
    run = work / f"recipe-{time.monotonic_ns()}"
    command = [
        sys.executable, str(REPO / "recipes" / "train_gpt2.py"), "--config", str(CONFIG),
        "--dataset_dir", dataset_dir, "--output_dir", str(run), "--per_device_train_batch_size", str(batch_size),
        "--max_steps", str(steps), "--logging_steps", "1", "--eval_steps", "0", "--eval_batches", "1",
        "--save_steps", "0", "--num_samples", "0",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the recipe failed:\n{done.stderr[-3000:]}")
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train = {r["step"]: r for r in lines if "elapsed" in r}
    first, last = train[warmup], train[steps]
    return {"tokens": last["tokens"] - first["tokens"], "seconds": last["elapsed"] - first["elapsed"]}


def plain_run(dataset_dir: str, batch_size: int, steps: int, warmup: int, work: Path) -> dict:
    out = work / f"plain-{time.monotonic_ns()}.json"
    command = [sys.executable, __file__, "--plain-worker", str(out), "--dataset_dir", dataset_dir,
               "--batch_size", str(batch_size), "--steps", str(steps), "--warmup", str(warmup)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the plain loop failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def small_corpus(work: Path) -> str:
    from maia_hf.data import build_dataset

    path = work / "corpus"
    build_dataset(["music21:bach"], path, seq_len=512, transpositions="0", progress=False)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", help="a corpus of 512-token windows (`maia data build`)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per run, warm-up included")
    parser.add_argument("--warmup", type=int, default=2, help="steps left out of the timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settings", action="store_true", help="the throughput of each setting against v1")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="TEXT",
        help="with --settings: the v1 recipe and the settings whose names contain TEXT",
    )
    parser.add_argument("--context", default="", help="with --settings: what else ran on the machine, for the table")
    parser.add_argument("--plain-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only and not args.settings:
        parser.error("--only needs --settings")
    if args.settings:
        settings_table(args.repeats, args.only, args.context)
        return
    if args.plain_worker:
        plain_loop(args.dataset_dir, args.batch_size, args.steps, args.warmup, args.plain_worker)
        return
    if args.warmup < 1 or args.steps <= args.warmup:
        parser.error("need 1 <= --warmup < --steps")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dataset_dir = args.dataset_dir or small_corpus(work)
        load_before = os.getloadavg()[0]
        runs = {"recipe": [], "plain": []}
        for _ in range(args.repeats):  # alternate, so that load changes hit both alike
            for name, fn in (("plain", plain_run), ("recipe", recipe_run)):
                r = fn(dataset_dir, args.batch_size, args.steps, args.warmup, work)
                runs[name].append(r["tokens"] / r["seconds"])
                print(f"{name}: {runs[name][-1]:,.0f} tokens/s", flush=True)
        load_after = os.getloadavg()[0]
    recipe, plain = statistics.median(runs["recipe"]), statistics.median(runs["plain"])
    ratios = [p / r for p, r in zip(runs["plain"], runs["recipe"], strict=True)]
    overhead = statistics.median(ratios) - 1
    row = {
        "machine": describe(),
        "date": time.strftime("%Y-%m-%d"),
        "threads": int(os.environ["OMP_NUM_THREADS"]),
        "model": "maia-seed (4.94 M parameters, dropout 0.1)",
        "batch": f"{args.batch_size} x 512 tokens",
        "timed_steps": args.steps - args.warmup,
        "repeats": args.repeats,
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "tokens_per_second": {"recipe": runs["recipe"], "plain": runs["plain"]},
        "recipe_median": recipe,
        "plain_median": plain,
        "overhead_median": overhead,
        "goal_met": overhead <= 0.10,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(row, indent=2) + "\n")
    table = [
        "| loop | tokens/s (median) | all runs |",
        "|---|---:|---|",
        f"| plain PyTorch | {plain:,.0f} | {', '.join(f'{x:,.0f}' for x in runs['plain'])} |",
        f"| `recipes/train_gpt2.py` | {recipe:,.0f} | {', '.join(f'{x:,.0f}' for x in runs['recipe'])} |",
        "",
        f"Recipe overhead (median of the per-pair ratios plain / recipe - 1): **{overhead:+.1%}** "
        f"(goal: at most +10%; {'met' if overhead <= 0.10 else 'not met'}).",
    ]
    print("\n".join(table))
    write_section(
        "overhead",
        "## The recipe against a plain loop\n\n"
        f"Measured by `benchmarks/bench_training.py` on {row['date']}: {row['machine']}, "
        f"{row['threads']} thread(s), {row['model']}, batches of {row['batch']}, {row['timed_steps']} timed steps "
        f"after {args.warmup} warm-up steps, {args.repeats} alternating runs of each in fresh processes. "
        f"The machine is shared: load average {load_before:.1f} before, {load_after:.1f} after.\n\n"
        + "\n".join(table)
        + "\n\nThe recipe adds Accelerate's wrappers, the warm-up/cosine scheduler, the resumable data order "
        "(`WindowBatches`), token counting and a metrics line per step; the plain loop is AdamW, forward, "
        "backward, clipping and step on the same windows in the same order.",
    )


def settings_table(repeats: int, only: list[str] | None = None, context: str = "") -> None:
    """The training settings against the v1 recipe (benchmarks/training_settings.py), into docs/.

    All of them replace the "settings" section; a subset (``only``) goes into a section of its own.
    """
    import training_settings

    names = training_settings.select(only)
    load_before = os.getloadavg()[0]
    runs = training_settings.run_settings(repeats, names)
    load_after = os.getloadavg()[0]
    rows = training_settings.summarise(runs)
    table = training_settings.markdown(rows, describe(), (load_before, load_after), context)
    print(table)
    section = (
        "settings"
        if not only
        else "settings-"
        + "-".join("".join(c if c.isalnum() else "-" for c in part.lower()).strip("-") for part in only)
    )
    result = {"date": time.strftime("%Y-%m-%d"), "machine": describe(), "only": only, "context": context, "rows": rows}
    results = SETTINGS_RESULTS if not only else SETTINGS_RESULTS.with_name(f"training_{section.replace('-', '_')}.json")
    results.write_text(json.dumps(result, indent=2) + "\n")
    flags = " --only " + " ".join(f'"{part}"' for part in only) if only else ""
    command = f"`benchmarks/bench_training.py --settings{flags}`"
    title = "## Training settings against the v1 recipe" + (f": {', '.join(only)}" if only else "")
    write_section(
        section,
        f"{title}\n\n"
        f"Measured by {command} on {time.strftime('%Y-%m-%d')}: maia-seed, "
        f"batches of 16 x 512 tokens, each setting in a fresh process, {repeats} alternating rounds "
        "(`benchmarks/training_settings.py` says what each setting is).\n\n" + table,
    )


def write_section(name: str, text: str) -> None:
    """Replace one benchmark's section of docs/benchmarks/training.md (the others stay)."""
    begin, end = f"<!-- bench_training:{name} begin -->", f"<!-- bench_training:{name} end -->"
    current = REPORT.read_text() if REPORT.exists() else "# Training throughput\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in current:
        head, rest = current.split(begin, 1)
        current = head + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip() + "\n\n" + block + "\n"
    REPORT.write_text(current)


if __name__ == "__main__":
    main()
