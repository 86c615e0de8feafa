"""Turn what train_h200.py sent back (config, weight shards) into a model directory that ships.

    python recipes/gpu/unpack.py /work/.device/.../files --to runs/maia-h200
    python recipes/ship_model.py --model runs/maia-h200 --data ~/.cache/maia/corpora/v2 \\
        --sources piano-midi-de/ music21:bach/ --card docs/maia-small.md   # ships only if it is better

The tokenizer is the repository's (the device run used the same vocabulary); the generation settings are
the sampling ones every shipped model carries. The weights are saved as one safetensors file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", type=Path, help="the folder holding config.json and the *.safetensors")
    parser.add_argument("--to", type=Path, required=True, help="the model directory to write")
    args = parser.parse_args(argv)
    from maia_hf import MaiaForCausalLM, MaiaTokenizer
    from maia_hf.training.loop import sampling_generation_config

    if not (args.files / "config.json").is_file():
        raise SystemExit(f"unpack: error: {args.files} has no config.json; give the folder train_h200.py wrote")
    model = MaiaForCausalLM.from_pretrained(args.files)
    tokenizer = MaiaTokenizer()
    if model.config.vocab_size != len(tokenizer):
        raise SystemExit(f"unpack: error: the model has {model.config.vocab_size} token rows, the tokenizer "
                         f"{len(tokenizer)}; unpack with the checkout the device ran")  # fmt: skip
    model.generation_config = sampling_generation_config(tokenizer)
    model.save_pretrained(args.to)
    tokenizer.save_pretrained(args.to)
    print(f"unpack: wrote {args.to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
