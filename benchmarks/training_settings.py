"""Training throughput of maia-seed under each setting, against the v1 recipe in the same run.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_training.py --settings [--repeats 3]
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_training.py --settings --only "2 threads" "S ="

``--only`` runs the v1 recipe and the settings whose names contain one of the given strings (its table goes
into a section of its own, so the full table stays); run the thread rows on a machine with nothing else to do.

Each setting trains maia-seed (forward, backward, clipping, AdamW step) on the same batches of 16 x 512
tokens in a fresh process; the settings alternate, ``--repeats`` rounds, and the table gives the median
tokens/s, the ratio to the v1 recipe measured in the same round (median of the per-round ratios, so a
load that changes between rounds cancels), the model FLOP/s (6 N + the attention term per token, Kaplan
et al. 2020, counted densely whatever the pattern) and its share of this CPU's peak.

The v1 recipe is what trained maia-small v1: the fixed sparse pattern through the boolean-mask backend,
GPT-2's composite ``gelu_new``, fp32, AdamW's default (foreach) step, one thread.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

V1 = {"attn": "maia_sparse_fixed", "backend": "sdpa", "act": "gelu_new"}
SPLIT = {**V1, "backend": "split"}
V2 = {**SPLIT, "act": "gelu_pytorch_tanh", "fused": True}
SETTINGS = {
    "v1 recipe (sparse mask, gelu_new, fp32, 1 thread)": V1,
    "split sparse backend": SPLIT,
    "split + fused gelu (gelu_pytorch_tanh)": {**SPLIT, "act": "gelu_pytorch_tanh"},
    "S = split + fused gelu + fused AdamW": V2,
    "S, dense SDPA attention instead of sparse": {**V2, "attn": "sdpa"},
    "S + torch.compile": {**V2, "compile": True},
    "S + 2 threads": {**V2, "threads": 2},
    "v1 recipe + 2 threads": {**V1, "threads": 2},
    "S + bf16 autocast": {**V2, "bf16": True, "steps": 1, "warmup": 1},
}

N_LAYER, N_EMBD, N_INNER, N_CTX, VOCAB = 6, 256, 1024, 512, 273


def model_flops_per_token() -> float:
    """Training FLOPs per token of maia-seed: 6 N (weights, LM head included) + 6 n_layer n_ctx d."""
    per_layer = 4 * N_EMBD * N_EMBD + 2 * N_EMBD * N_INNER
    n = N_LAYER * per_layer + VOCAB * N_EMBD
    return 6 * n + 6 * N_LAYER * N_CTX * N_EMBD


def peak_flops_per_core() -> tuple[float, str]:
    """Nominal fp32 peak of one core: clock x FLOP per cycle of its widest FMA units (an estimate)."""
    import torch

    mhz = 0.0
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        bogomips = [float(line.split(":")[1]) for line in info.splitlines() if line.startswith("bogomips")]
        mhz = bogomips[0] / 2 if bogomips else 0.0
        family = next((int(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu family")), 0)
        model = next((int(line.split(":")[1]) for line in info.splitlines() if line.startswith("model\t")), 0)
    except (OSError, ValueError, IndexError):
        family = model = 0
    isa = torch.backends.cpu.get_cpu_capability()
    if "AVX512" in isa:
        per_cycle = 64  # two 512-bit FMA units
    elif family == 23 and model < 0x30:
        per_cycle = 16  # Zen 1: 256-bit AVX2 runs as two 128-bit halves
    else:
        per_cycle = 32  # two 256-bit FMA units
    return mhz * 1e6 * per_cycle, f"{mhz / 1000:.2f} GHz x {per_cycle} FLOP/cycle ({isa})"


def probe(setting: dict) -> dict:
    """Run in a fresh process: time ``steps`` training steps after ``warmup`` ones."""
    import torch

    torch.set_num_threads(setting.get("threads", 1))
    from maia_hf.configuration_maia import MaiaConfig
    from maia_hf.modeling_maia import MaiaForCausalLM
    from maia_hf.registration import register

    register()
    extra = {}
    if setting["attn"].startswith("maia_sparse"):
        extra = {"sparse_block": 128, "sparse_summary": 16, "sparse_backend": setting["backend"]}
    config = MaiaConfig.from_preset(
        "maia-seed", n_positions=N_CTX, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        activation_function=setting["act"], attn_implementation=setting["attn"], **extra,
    )  # fmt: skip
    torch.manual_seed(0)
    model = MaiaForCausalLM(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=setting.get("fused") or None)
    step_model = torch.compile(model) if setting.get("compile") else model
    ids = torch.randint(4, 260, (16, N_CTX), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(setting.get("bf16"))):
            loss = step_model(input_ids=ids, attention_mask=mask, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(setting.get("warmup", 2)):
        step()
    steps = setting.get("steps", 4)
    began = time.perf_counter()
    for _ in range(steps):
        step()
    return {"tokens_per_second": steps * ids.numel() / (time.perf_counter() - began)}


def select(only: list[str] | None) -> list[str]:
    """The settings to run: all, or the v1 recipe (the baseline) and those whose names contain a string of ``only``.

    >>> select(["2 threads"])
    ['v1 recipe (sparse mask, gelu_new, fp32, 1 thread)', 'S + 2 threads', 'v1 recipe + 2 threads']
    """
    names = list(SETTINGS)
    if not only:
        return names
    chosen = [names[0]] + [n for n in names[1:] if any(part in n for part in only)]
    unknown = [part for part in only if not any(part in n for n in names)]
    if unknown:
        raise SystemExit(f"bench_training: --only {unknown[0]!r} names no setting; the settings: {', '.join(names)}")
    return chosen


def run_settings(repeats: int, names: list[str] | None = None) -> dict:
    """The settings (default: every one) in fresh processes, alternating, ``repeats`` rounds."""
    names = names or list(SETTINGS)
    runs: dict[str, list[float]] = {name: [] for name in names}
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    for round_index in range(repeats):
        for name in names:
            setting = SETTINGS[name]
            if name.endswith("bf16 autocast") and round_index > 0:
                continue  # minutes per step where the CPU lacks bf16 units: one round says enough
            code = f"import json, training_settings as t; print(json.dumps(t.probe({setting!r})))"
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=os.path.dirname(__file__)
            )
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1])["tokens_per_second"])
            print(f"round {round_index + 1}: {name}: {runs[name][-1]:.0f} tokens/s", flush=True)
    return runs


def summarise(runs: dict[str, list[float]]) -> list[dict]:
    baseline = runs[next(iter(SETTINGS))]  # select() always keeps the v1 recipe
    flops, _ = model_flops_per_token(), None
    peak, _ = peak_flops_per_core()
    rows = []
    for name, values in runs.items():
        pairs = [v / b for v, b in zip(values, baseline, strict=False)]
        threads = SETTINGS[name].get("threads", 1)
        median = statistics.median(values)
        rows.append({
            "setting": name, "tokens_per_second": median, "runs": values,
            "vs_v1": statistics.median(pairs), "gflops": median * flops / 1e9,
            "share_of_peak": median * flops / (peak * threads) if peak else float("nan"), "threads": threads,
        })  # fmt: skip
    return rows


def markdown(rows: list[dict], machine: str, load: tuple[float, float], context: str = "") -> str:
    _, peak_text = peak_flops_per_core()
    context = f" ({context})" if context else ""
    lines = [
        f"Machine: {machine}; load average {load[0]:.1f} before, {load[1]:.1f} after{context}."
        f" Model FLOPs per token: {model_flops_per_token() / 1e6:.1f} M; peak per core {peak_text}.",
        "",
        "| setting | tokens/s (median) | vs v1 (median of per-round ratios) | model GFLOP/s | share of peak "
        "| all runs |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        runs = ", ".join(f"{v:.0f}" for v in r["runs"])
        lines.append(
            f"| {r['setting']} | {r['tokens_per_second']:.0f} | {r['vs_v1']:.2f}x | {r['gflops']:.1f} | "
            f"{100 * r['share_of_peak']:.0f}% of {r['threads']} core(s) | {runs} |"
        )
    return "\n".join(lines)
