"""Train a maia model: GPT from scratch, GPT-2 transfer, the sparse variant, or the LSTM baseline.

    accelerate launch recipes/train_gpt2.py --config recipes/configs/maia-seed.yaml [--key value ...]
    python recipes/train_gpt2.py --config recipes/configs/tiny.yaml          # one process, this CPU

Keys: every field of maia_hf.training.ModelArguments / DataArguments / MaiaTrainingArguments, the
training ones named as in transformers.TrainingArguments (`python recipes/train_gpt2.py --help`).
Precedence: defaults < YAML < command line; an unknown key is an error. `--resume_from_checkpoint true`
continues the latest checkpoint in output_dir exactly (or give a checkpoint folder).
"""

import sys

from maia_hf.errors import MaiaError
from maia_hf.training import parse_arguments, train


def main() -> int:
    try:
        model_args, data_args, training_args = parse_arguments()
        final = train(model_args, data_args, training_args)
    except MaiaError as exc:
        print(f"train_gpt2: error: {exc}", file=sys.stderr)
        return 2
    print(f"done: {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
