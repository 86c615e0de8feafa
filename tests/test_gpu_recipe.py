"""The GPU job of recipes/gpu/, run end to end on CPU with --tiny: what a lent H200 runs, minus the size."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import REPO

from maia_hf import MaiaForCausalLM


def test_the_gpu_job_builds_trains_scores_and_packs_a_model_that_unpacks(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out, work, model = tmp_path / "out", tmp_path / "work", tmp_path / "model"
    job = [sys.executable, str(REPO / "recipes" / "gpu" / "train_h200.py"), "--tiny", "--out", str(out),
           "--work", str(work), "--num-proc", "1"]  # fmt: skip
    subprocess.run(job, check=True, env=env, capture_output=True, text=True, timeout=600)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["max_steps"] >= 10 and summary["tokens"] > 0 and summary["validation"]
    report = json.loads((out / "report.json").read_text())
    assert report["splits"][report["decides"]]["candidate"]["tokens"] > 0
    returned = sorted(p.name for p in out.iterdir())
    assert len(returned) <= 8 and all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())
    assert "config.json" in returned and any(name.endswith(".safetensors") for name in returned)
    unpack = [sys.executable, str(REPO / "recipes" / "gpu" / "unpack.py"), str(out), "--to", str(model)]
    subprocess.run(unpack, check=True, env=env, capture_output=True, text=True)
    loaded = MaiaForCausalLM.from_pretrained(model)
    assert loaded.config.n_layer == 2 and (model / "tokenizer.json").is_file()
    assert loaded.generation_config.do_sample and loaded.generation_config.top_k == 5
