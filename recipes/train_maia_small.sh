#!/usr/bin/env bash
# maia-small's training campaign: one segment of training per call, continued across sessions.
#
#   nohup bash recipes/train_maia_small.sh > ~/.cache/maia/runs/maia-small-v2.log 2>&1 &
#
# A CPU machine here trains in stretches of a few hours, and each stretch starts from a fresh checkout,
# so the run lives OUTSIDE the checkout, in $RUN (default ~/.cache/maia/runs/maia-small-v2):
#   - $RUN/checkpoints/latest exists: resume it exactly (same data order, optimizer, schedule, RNG);
#   - it does not (a new machine): warm-start from the shipped weights (maia_hf.DEFAULT_MODEL) with a fresh
#     optimizer and a 50-step warm-up, so no stretch starts from scratch.
# The corpus is built once into $CORPUS (default ~/.cache/maia/corpora/v2) and reused. Every call appends
# the segment's start (step, tokens, machine, commit) to $RUN/segments.jsonl; the model card's training log
# is made from it and $RUN/metrics.jsonl. Training runs on $THREADS threads (default 1: the other core stays
# free for other work; THREADS=2 while the machine has nothing else to do), at a higher scheduling priority
# when that is allowed. Ship a checkpoint only if it beats the shipped model:
#   .venv/bin/python recipes/ship_model.py --checkpoint $RUN/checkpoints/latest --data $CORPUS --card docs/maia-small.md
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-$HOME/.cache/maia/runs/maia-small-v2}
CORPUS=${CORPUS:-$HOME/.cache/maia/corpora/v2}
PY=${PY:-.venv/bin/python}
THREADS=${THREADS:-1}
export OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$RUN"

if [ ! -f "$CORPUS/dataset_dict.json" ]; then
    echo "train_maia_small: building the corpus into $CORPUS (about 15 minutes on one core)"
    .venv/bin/maia data build ../shared/corpora/piano-midi-de music21:bach,mozart,beethoven,haydn \
        --out "$CORPUS" --num-proc 1 --quiet
fi

start=()
if [ -f "$RUN/checkpoints/latest" ]; then
    start=(--resume_from_checkpoint true)
    how="resume $(cat "$RUN/checkpoints/latest")"
else
    # The shipped weights, copied into the run so that later segments never depend on the checkout.
    [ -d "$RUN/init" ] || "$PY" -c "import maia_hf, shutil, sys; shutil.copytree(maia_hf.DEFAULT_MODEL, sys.argv[1])" "$RUN/init"
    start=(--init_from "$RUN/init" --warmup_steps 50 --learning_rate 0.0005)
    how="warm start from $RUN/init"
fi
"$PY" - "$RUN" "$how" "$THREADS" <<'PY'
import json, subprocess, sys, time
from pathlib import Path
run, how, threads = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
step = tokens = 0
latest = run / "checkpoints" / "latest"
if latest.is_file():
    state = json.loads((run / "checkpoints" / latest.read_text().strip() / "trainer_state.json").read_text())
    step, tokens = state["step"], state["tokens"]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
record = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "how": how, "start_step": step,
          "start_tokens": tokens, "machine": f"{cpu}, {'one thread' if threads == 1 else f'{threads} threads'}", "commit": commit}
with open(run / "segments.jsonl", "a") as f:
    f.write(json.dumps(record) + "\n")
print(f"train_maia_small: segment from step {step} ({how})")
PY

"$PY" recipes/train_gpt2.py --config recipes/configs/maia-small.yaml --dataset_dir "$CORPUS" \
    --output_dir "$RUN" "${start[@]}" &
pid=$!
# Above the other work on this machine: nice inside this session's autogroup, and the autogroup itself.
renice -n -10 -p "$pid" >/dev/null 2>&1 || true
echo -10 > "/proc/$pid/autogroup" 2>/dev/null || true
wait "$pid"
