"""The one description of the machine that every benchmark prints and writes into docs/.

`describe()` is the line a table's caption carries; `details()` the same facts as a dict for the JSON
results. Both name the vector instructions torch can use, because they decide what is fast here (bf16
autocast is fast only with AVX-512 BF16 or AMX; on an AVX2-only CPU it is several times slower than fp32).
"""

from __future__ import annotations

import os
import platform
import subprocess


def _lscpu() -> dict[str, str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def _vector_isa() -> str:
    """The best CPU instruction set torch dispatches to (``AVX2``, ``AVX512``, ``AVX512_BF16``...)."""
    try:
        import torch

        return torch.backends.cpu.get_cpu_capability()
    except ImportError:
        return "?"


def details() -> dict:
    """CPU model, CPU counts, memory, vector instructions and platform, as a dict."""
    fields = _lscpu()
    flags = set(fields.get("Flags", "").split())
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = "?"
    return {
        "cpu_model": fields.get("Model name") or platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "memory": memory,
        "torch_cpu_capability": _vector_isa(),
        "avx512_bf16": "avx512_bf16" in flags,
        "l2_cache": fields.get("L2 cache", "?"),
        "platform": platform.platform(),
    }


def describe() -> str:
    """``"<CPU model>, <n> cores, <vector ISA>"``: the machine line of a benchmark table."""
    d = details()
    bf16 = ", AVX-512 BF16" if d["avx512_bf16"] else ""
    return f"{d['cpu_model']}, {d['usable_cpus']} cores, {d['torch_cpu_capability']}{bf16}"
