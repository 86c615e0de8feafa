"""The training log of a campaign run, as the Markdown table the model card carries.

    python recipes/training_log.py ~/.cache/maia/runs/maia-small-v2

One row per segment (``segments.jsonl``, written by ``recipes/train_maia_small.sh`` at each start): the
steps and tokens it trained, its hours of training, and the last validation figures it logged
(``metrics.jsonl``: the training loop's ``val_bits_per_token``, every window's every token).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    records = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
    return records


def segment_rows(run: Path) -> list[dict]:
    """Each segment's start, end, steps, tokens, hours and last validation."""
    segments = read_jsonl(run / "segments.jsonl")
    metrics = read_jsonl(run / "metrics.jsonl")
    train = [m for m in metrics if "tokens" in m and "elapsed" in m]
    rows = []
    for i, segment in enumerate(segments):
        start = segment.get("start_step", 0)
        end = segments[i + 1].get("start_step", 0) if i + 1 < len(segments) else (train[-1]["step"] if train else 0)
        inside = [m for m in train if start < m["step"] <= end]
        before = [m for m in train if m["step"] <= start]
        validation = [m for m in metrics if "val_bits_per_token" in m and start < m["step"] <= end]
        seconds = (inside[-1]["elapsed"] - (before[-1]["elapsed"] if before else 0.0)) if inside else 0.0
        rows.append({
            "segment": i + 1, "started": segment.get("started", "?"), "how": segment.get("how", "?"),
            "machine": segment.get("machine", "?"), "steps": f"{start}-{end}",
            "tokens": (inside[-1]["tokens"] - segment.get("start_tokens", 0)) if inside else 0,
            "hours": seconds / 3600, "validation": validation[-1] if validation else None,
        })  # fmt: skip
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| segment | started | how | steps | tokens | hours | validation bits/token (bits/note) |",
        "|---:|---|---|---|---:|---:|---|",
    ]
    for r in rows:
        v = r["validation"]
        val = f"{v['val_bits_per_token']:.3f} ({v['val_bits_per_note']:.2f}) at step {v['step']}" if v else "-"
        lines.append(
            f"| {r['segment']} | {r['started'][:16]} | {r['how']} | {r['steps']} | {r['tokens']:,} | "
            f"{r['hours']:.2f} | {val} |"
        )
    total = sum(r["tokens"] for r in rows)
    lines.append(f"| all | | | | {total:,} | {sum(r['hours'] for r in rows):.2f} | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the campaign's run folder")
    args = parser.parse_args(argv)
    if not (args.run / "segments.jsonl").is_file():
        print(f"training_log: error: {args.run} has no segments.jsonl; is it a campaign run?", file=sys.stderr)
        return 2
    print(markdown(segment_rows(args.run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
