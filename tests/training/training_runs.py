"""What the training tests share (imported as `training_runs`): the tiny recipe and how to run it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from helpers import REPO

TINY = REPO / "recipes" / "configs" / "tiny.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def metrics(run: Path) -> list[dict]:
    """The records of a run's metrics.jsonl."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def recipe(*args, launcher=(sys.executable,)) -> list[str]:
    """The command that trains the tiny recipe with ``args`` as overrides."""
    return [*launcher, str(REPO / "recipes" / "train_gpt2.py"), "--config", str(TINY), *map(str, args)]
