"""Generation speed of maia-seed with its KV cache on this CPU: new tokens/s, seconds per bar, and the
22-bar Lacrimosa continuation (the goal: under 10 s), alone and as the best of 4 decoded as one batch.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_generation.py [--model DIR] [--runs 5] [--best-of 4]

Without --model it uses the model that ships with maia, or (where none ships) a maia-seed with random
weights; a random model writes fewer tokens per bar than a trained one, so its seconds per bar say little
and the table says which model ran. Each figure is the median of --runs interleaved runs; the Lacrimosa
is timed with one thread (the goal) and with both cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from machine import describe  # benchmarks/machine.py

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "benchmarks" / "generation.json"
REPORT = REPO / "docs" / "benchmarks" / "generation.md"


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


def tokens_per_second(model, tokens: int, lean: bool) -> float:
    """Unconstrained top-k 5 decoding with the KV cache: ``model.generate`` or maia's lean ``sample`` loop."""
    from maia_hf.generation import sample

    ids = torch.tensor([[2, 250] + [43, 191, 131] * 40])
    began = time.perf_counter()
    if lean:
        sample(model, ids, tokens, top_k=5)
    else:
        model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=True, top_k=5, pad_token_id=0)
    return tokens / (time.perf_counter() - began)


def lacrimosa_figures(results: list) -> dict:
    """Medians over the runs of one Lacrimosa variant (a list of `Continuation`)."""
    med = statistics.median
    seconds = med(r.seconds for r in results)
    return {
        "seconds": seconds,
        "seconds_all_runs": [round(r.seconds, 2) for r in results],
        "tokens": med(r.tokens for r in results),
        "tokens_per_second": med(r.tokens_per_second for r in results),
        "seconds_per_bar": seconds / 22,
        "candidate_scores_all_runs": [[round(x, 4) for x in r.candidate_scores] for r in results],
    }


def lacrimosa_table(name: str, variants: dict) -> list[str]:
    """The Markdown rows of the Lacrimosa table: one per variant (label -> threads -> figures) and thread count."""
    lines = [
        "| Lacrimosa, 22 bars | threads | seconds (median) | all runs | tokens | tokens/s | s per bar | under 10 s |",
        "|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for label, by_threads in variants.items():
        for threads, r in by_threads.items():
            lines.append(
                f"| {name}{label} | {threads} | {r['seconds']:.2f} | "
                f"{', '.join(f'{x:.1f}' for x in r['seconds_all_runs'])} | {r['tokens']:.0f} | "
                f"{r['tokens_per_second']:.0f} | {r['seconds_per_bar']:.3f} | {'yes' if r['seconds'] < 10 else 'no'} |"
            )
    return lines


def time_runs(model, tokenizer, runs: int, best_of: int):
    """Interleaved runs, so that load changes hit every variant alike: decoding loops, then the Lacrimosa
    alone and as the best of ``best_of``, with one thread and with two."""
    from maia_hf.generation import continue_piece, read_prompt
    from maia_hf.resources import LACRIMOSA_PROMPT

    prompt = read_prompt(str(LACRIMOSA_PROMPT), tokenizer.codec)
    decode = {"generate": [], "sample": []}
    lacrimosa = {candidates: {1: [], 2: []} for candidates in (1, best_of)}
    for run in range(runs):
        torch.set_num_threads(1)
        decode["generate"].append(tokens_per_second(model, 256, lean=False))
        decode["sample"].append(tokens_per_second(model, 256, lean=True))
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for candidates, by_threads in lacrimosa.items():
                (result,) = continue_piece(
                    model, tokenizer, prompt, bars=22, composer="mozart", seed=run, candidates=candidates,
                    progress=False,
                )  # fmt: skip
                by_threads[threads].append(result)
    return decode, lacrimosa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a saved maia model (default: the shipped one, else random maia-seed)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--best-of", type=int, default=4, metavar="N", help="candidates of the batched Lacrimosa")
    args = parser.parse_args()

    model, tokenizer, name = load(args.model)
    load_before = os.getloadavg()[0]
    decode, lacrimosa = time_runs(model, tokenizer, args.runs, args.best_of)
    load_after = os.getloadavg()[0]
    med = statistics.median
    best_key = f"lacrimosa_best_of_{args.best_of}"
    row = {
        "model": name,
        "machine": describe(),
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "runs": args.runs,
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "generate_tokens_per_second": med(decode["generate"]),
        "sample_tokens_per_second": med(decode["sample"]),
        "sample_over_generate": med(a / b for a, b in zip(decode["sample"], decode["generate"], strict=True)),
        "lacrimosa": {str(t): lacrimosa_figures(results) for t, results in lacrimosa[1].items()},
        best_key: {str(t): lacrimosa_figures(results) for t, results in lacrimosa[args.best_of].items()},
    }
    row["goal_met"] = row["lacrimosa"]["1"]["seconds"] < 10
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(row, indent=2) + "\n")
    write_report(row, name, args.runs, args.best_of)


def write_report(row: dict, name: str, runs: int, best_of: int) -> None:
    decoding = [
        "| decoding loop (one thread, top-k 5, no constraints) | new tokens/s |",
        "|---|---:|",
        f"| `model.generate` | {row['generate_tokens_per_second']:.0f} |",
        f"| `maia_hf.generation.sample` (what `continue_piece` runs) | {row['sample_tokens_per_second']:.0f} "
        f"({row['sample_over_generate']:.2f}x) |",
    ]
    variants = {"": row["lacrimosa"], f", best of {best_of}": row[f"lacrimosa_best_of_{best_of}"]}
    lines = lacrimosa_table(name, variants)
    print("\n".join(decoding + [""] + lines))
    load_before, load_after = row["load_average"]
    # Hand-written sections after the generated part (a profile, a reading) are kept as they are.
    old = REPORT.read_text() if REPORT.exists() else ""
    kept = old[old.index("\n## ") :] if "\n## " in old else ""
    REPORT.write_text(
        "# Generation speed\n\n"
        f"Measured by `benchmarks/bench_generation.py` on {row['date']}: {row['machine']}, torch {row['torch']}, "
        f"medians of {runs} interleaved runs. The machine is shared: load average {load_before:.1f} before, "
        f"{load_after:.1f} after.\n\n"
        + "\n".join(decoding)
        + "\n\n"
        + "\n".join(lines)
        + "\n\n*Decoding loop*: 256 new tokens with the KV cache after a 122-token prompt. `sample` is the "
        "loop of `generate(do_sample=True)` (same processors, same warpers, same draws: tested token for token) "
        "without its per-step bookkeeping; for a 5 M-parameter model that bookkeeping was half the time.\n"
        "*Lacrimosa*: `continue_piece` (constrained top-k 5, the sliding window over 512 positions, the streamer) "
        "continuing Mozart's 8 bars by 22 bars to bar 30, as `maia lacrimosa` does, without writing files. "
        "The goal (under 10 s) is judged on the one-thread row.\n"
        f"*Best of {best_of}*: `continue_piece(..., candidates={best_of})`, as `maia lacrimosa --candidates "
        f"{best_of}` does: {best_of} completions decoded as one batch of {best_of} rows, the one with the highest "
        "mean log-probability per token under the unconstrained model kept. Tokens and tokens/s count the kept "
        "completion only; the candidates' scores of every run are in `generation.json`.\n" + kept
    )


if __name__ == "__main__":
    main()
