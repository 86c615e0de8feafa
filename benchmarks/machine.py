"""The machine line the benchmarks print and write into docs/: CPU model and count from lscpu."""

from __future__ import annotations

import platform
import subprocess


def describe() -> str:
    """``"<CPU model>, <n> cores"`` from lscpu, else what `platform` knows."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor()
    model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if "Model name" in line), "")
    cores = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("CPU(s)")), "")
    return f"{model}, {cores} cores" if model else platform.processor()
