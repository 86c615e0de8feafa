"""Copy a trained model into the package as maia's default model, with its model card.

    python recipes/ship_model.py runs/maia-small --card docs/maia-small.md [--dest maia_hf/resources/maia-small]

Takes RUN/final (weights, config, tokenizer, generation config), leaves out the code copies and
``auto_map`` that ``save_pretrained`` adds for ``trust_remote_code`` (inside the package the code is
the package itself), checks the size limit (30 MB), and writes the card (a Markdown file you wrote
from the run's figures) as the directory's README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

KEEP = ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")
LIMIT_BYTES = 30 * 1024 * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a training output_dir (its final/ is shipped)")
    parser.add_argument("--card", type=Path, required=True, help="the model card (Markdown with YAML front matter)")
    parser.add_argument("--dest", type=Path, default=Path("maia_hf/resources/maia-small"))
    args = parser.parse_args()
    final = args.run / "final"
    missing = [name for name in KEEP if not (final / name).is_file()]
    if missing:
        print(f"ship_model: error: {final} lacks {', '.join(missing)}; is the run finished?", file=sys.stderr)
        return 2
    size = sum((final / name).stat().st_size for name in KEEP)
    if size > LIMIT_BYTES:
        print(f"ship_model: error: {size / 2**20:.1f} MB is over the 30 MB limit", file=sys.stderr)
        return 2
    shutil.rmtree(args.dest, ignore_errors=True)
    args.dest.mkdir(parents=True)
    for name in KEEP:
        shutil.copy2(final / name, args.dest / name)
    for name in ("config.json", "tokenizer_config.json"):
        data = json.loads((args.dest / name).read_text())
        data.pop("auto_map", None)
        (args.dest / name).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    shutil.copy2(args.card, args.dest / "README.md")
    print(f"shipped {final} -> {args.dest} ({size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
