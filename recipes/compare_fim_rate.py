"""What fill-in-the-middle windows cost left to right, and what they buy: short runs at each fim_rate.

Each run continues the same checkpoint of the training campaign for ``--steps`` steps, identical but for
``fim_rate`` (same data order, schedule and seed; the vocabulary grows by the three FIM tokens), and is then
scored on held-out pieces: left-to-right bits per token on the validation windows, and the bits per middle
token of gaps given prefix and suffix against given the prefix alone (:func:`maia_hf.evaluation.infilling_nll`).
Every run gets the same number of steps; the table gives each one's wall time, so "equal steps" is seen to
be "equal wall time" (the transform costs little).

    .venv/bin/python recipes/compare_fim_rate.py --run ~/.cache/maia/runs/maia-small-v2 \\
        --data ~/.cache/maia/corpora/v2 --steps 60 --out docs/fim-rate.md

The run folders stay in ``--work`` (one per rate), so the chosen one can become the campaign's next segment.
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _copy_run(run: Path, checkpoint: Path, target: Path) -> None:
    """A run folder holding only ``checkpoint`` (as latest) and the run's logs."""
    if target.exists():
        shutil.rmtree(target)
    (target / "checkpoints").mkdir(parents=True)
    for name in ("metrics.jsonl", "segments.jsonl"):
        if (run / name).is_file():
            shutil.copy2(run / name, target / name)
    shutil.copytree(checkpoint, target / "checkpoints" / checkpoint.name)
    (target / "checkpoints" / "latest").write_text(checkpoint.name)


def _elapsed(checkpoint: Path) -> float:
    return float(json.loads((checkpoint / "trainer_state.json").read_text()).get("elapsed", 0.0))


def _started(target: Path, start: int, stop: int) -> bool:
    """Whether ``target`` holds this comparison's run, with a checkpoint past its start."""
    latest = target / "checkpoints" / "latest"
    if not latest.is_file():
        return False
    step = json.loads((target / "checkpoints" / latest.read_text().strip() / "trainer_state.json").read_text())["step"]
    return start < step <= stop


def _train(target: Path, data: Path, config: Path, stop: int, rate: float, save: int, extra: list[str]) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    command = [sys.executable, str(REPO / "recipes" / "train_gpt2.py"), "--config", str(config), "--dataset_dir",
               str(data), "--output_dir", str(target), "--resume_from_checkpoint", "true", "--stop_after", str(stop),
               "--fim_rate", str(rate), "--save_steps", "10", "--eval_steps", "100000", "--num_samples", "0",
               *extra]  # fmt: skip
    began = time.perf_counter()
    with open(target / "compare.log", "a") as log:
        subprocess.run(command, check=True, env=env, stdout=log, stderr=subprocess.STDOUT)
    return time.perf_counter() - began


def _score(checkpoint: Path, data: Path, windows: int) -> dict:
    import torch

    from maia_hf import MaiaForCausalLM
    from maia_hf.data import load_corpus
    from maia_hf.evaluation.infilling import infilling_nll
    from maia_hf.evaluation.likelihood import validation_nll

    torch.set_num_threads(1)
    corpus, _, tokenizer = load_corpus(data)
    tokenizer.add_fim_tokens()
    model = MaiaForCausalLM.from_pretrained(checkpoint).eval()
    left_to_right = validation_nll(model, tokenizer, corpus["validation"], max_windows=windows)
    # fim_rate 0 leaves the vocabulary as it was: that model cannot read the FIM tokens at all.
    has_fim = model.config.vocab_size >= len(tokenizer)
    infill = infilling_nll(model, tokenizer, corpus["validation"], max_windows=windows) if has_fim else None
    return {"left_to_right": left_to_right, "infilling": infill}


def _table(rows: list[dict], start: int, steps: int, machine: str) -> str:
    lines = [
        f"Each run continues the campaign's step-{start} checkpoint for {steps} steps ({machine}); scored on "
        "held-out pieces of the v2 corpus's validation split.",
        "",
        "| fim_rate | wall time | left-to-right bits/token | middle bits/token, prefix + suffix | middle bits/token, "
        "prefix only | suffix saves |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lr, fim = r["left_to_right"], r["infilling"]
        middle = (
            f"{fim['bits_per_token_with_suffix']:.3f} | {fim['bits_per_token_prefix_only']:.3f} | {fim['saving']:+.1%}"
            if fim else "no FIM tokens | - | -"
        )  # fmt: skip
        lines.append(f"| {r['rate']:g} | {r['seconds'] / 60:.1f} min | {lr['bits_per_token']:.3f} | {middle} |")
    lr = rows[0]["left_to_right"]
    scored = next((r["infilling"] for r in rows if r["infilling"]), None)
    lines += ["", f"Left to right: {lr['windows']} windows, {lr['tokens']:,} tokens."]
    if scored:
        lines[-1] += (f" Infilling: {scored['gaps']} gaps of 1-4 bars, {scored['tokens']:,} middle tokens, the same "
                      "targets both ways.")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="the campaign's run folder")
    parser.add_argument("--data", type=Path, required=True, help="the corpus the campaign trains on")
    parser.add_argument("--checkpoint", type=Path, help="default: the run's latest")
    parser.add_argument("--config", type=Path, default=REPO / "recipes" / "configs" / "maia-small.yaml")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.25, 0.5])
    parser.add_argument("--windows", type=int, default=128, help="validation windows scored (each way)")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "maia" / "runs" / "fim-compare")
    parser.add_argument("--out", type=Path, help="write the table and the figures (JSON beside it)")
    args, extra = parser.parse_known_args(argv)  # the rest goes to train_gpt2.py (e.g. --seq_len 512)
    from benchmarks.machine import describe

    latest = args.run / "checkpoints" / "latest"
    checkpoint = args.checkpoint or args.run / "checkpoints" / latest.read_text().strip()
    start = json.loads((checkpoint / "trainer_state.json").read_text())["step"]
    rows = []
    for rate in args.rates:
        target = args.work / f"rate-{rate:g}"
        if not _started(target, start, start + args.steps):  # an interrupted comparison goes on where it was
            _copy_run(args.run, checkpoint, target)
        _train(target, args.data, args.config, start + args.steps, rate, args.steps, extra)
        final = target / "checkpoints" / f"step-{start + args.steps:07d}"
        # Training time from the runs' own clocks (kept across a resume), not this script's.
        seconds = _elapsed(final) - _elapsed(checkpoint)
        scored = _score(final, args.data, args.windows)
        rows.append({"rate": rate, "seconds": seconds, **scored})
        print(json.dumps(rows[-1]), flush=True)
    table = _table(rows, start, args.steps, f"{describe()}, one thread")
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
