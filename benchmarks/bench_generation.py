"""Generation speed of maia-seed with its KV cache on this CPU: new tokens/s, seconds per bar, and the
22-bar Lacrimosa continuation (the goal: under 10 s).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_generation.py [--model DIR] [--runs 5]

Without --model it uses the model that ships with maia, or (where none ships) a maia-seed with random
weights; a random model writes fewer tokens per bar than a trained one, so its seconds per bar say little
and the table says which model ran. Each figure is the median of --runs runs, one thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "benchmarks" / "generation.json"
REPORT = REPO / "docs" / "benchmarks" / "generation.md"


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line), "")
        cores = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("CPU(s)")), "")
        return f"{model}, {cores} cores" if model else platform.processor()
    except OSError:
        return platform.processor()


def load(model_dir):
    import maia_hf  # noqa: F401  (registers the Auto classes)
    from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaTokenizer
    from maia_hf.compose import default_model, load_model

    path = model_dir or default_model()
    if path is not None:
        model, tokenizer = load_model(path)
        return model, tokenizer, str(Path(path).name)
    torch.manual_seed(0)
    tokenizer = MaiaTokenizer()
    return MaiaForCausalLM(MaiaConfig.from_preset("maia-seed")).eval(), tokenizer, "maia-seed (random weights)"


def raw_tokens_per_second(model, tokens: int) -> float:
    """Plain generate() with the KV cache, no constraints: the model's decoding speed."""
    ids = torch.tensor([[2, 250] + [43, 191, 131] * 40])
    began = time.perf_counter()
    model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=True, top_k=5, pad_token_id=0)
    return tokens / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a saved maia model (default: the shipped one, else random maia-seed)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from maia_hf.compose import read_prompt
    from maia_hf.generation import continue_piece
    from maia_hf.resources import LACRIMOSA_PROMPT

    model, tokenizer, name = load(args.model)
    prompt = read_prompt(str(LACRIMOSA_PROMPT), tokenizer.codec)
    raw, lacrimosa = [], []
    for run in range(args.runs):
        raw.append(raw_tokens_per_second(model, 256))
        (result,) = continue_piece(model, tokenizer, prompt, bars=22, composer="mozart", seed=run, progress=False)
        lacrimosa.append(result)
    seconds = statistics.median(r.seconds for r in lacrimosa)
    row = {
        "model": name,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "threads": 1,
        "runs": args.runs,
        "raw_tokens_per_second": statistics.median(raw),
        "lacrimosa_seconds": seconds,
        "lacrimosa_tokens": statistics.median(r.tokens for r in lacrimosa),
        "lacrimosa_tokens_per_second": statistics.median(r.tokens_per_second for r in lacrimosa),
        "seconds_per_bar": seconds / 22,
        "goal_met": seconds < 10,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(row, indent=2) + "\n")
    table = [
        "| model | plain generate, new tokens/s | Lacrimosa: 22 bars, s | tokens | tokens/s | s per bar | under 10 s |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| {name} | {row['raw_tokens_per_second']:.0f} | {seconds:.2f} | {row['lacrimosa_tokens']:.0f} | "
        f"{row['lacrimosa_tokens_per_second']:.0f} | {row['seconds_per_bar']:.3f} | "
        f"{'yes' if row['goal_met'] else 'no'} |",
    ]
    print("\n".join(table))
    REPORT.write_text(
        "# Generation speed\n\n"
        f"Measured by `benchmarks/bench_generation.py` on {row['date']}: {row['machine']}, torch {row['torch']}, "
        f"one thread, medians of {args.runs} runs. Shared 2-core machine: other work ran beside it.\n\n"
        + "\n".join(table)
        + "\n\n*Plain generate*: `model.generate` with the KV cache and top-k 5, 256 new tokens, no constraints. "
        "*Lacrimosa*: `continue_piece` (constrained top-k 5, the sliding window over 512 positions, the streamer) "
        "continuing Mozart's 8 bars by 22 bars to bar 30, as `maia lacrimosa` does, without writing files.\n"
    )


if __name__ == "__main__":
    main()
