"""Train a maia model: GPT from scratch, GPT-2 transfer, the sparse variant, or the LSTM baseline.

    accelerate launch recipes/train_gpt2.py --config recipes/configs/maia-seed.yaml [--key value ...]
    python recipes/train_gpt2.py --config recipes/configs/tiny.yaml          # one process, this CPU

Keys: every field of maia_hf.training.ModelArguments / DataArguments / MaiaTrainingArguments, the
training ones named as in transformers.TrainingArguments (`python recipes/train_gpt2.py --help`).
Precedence: defaults < YAML < command line; an unknown key or a value out of range is an error.
`--resume_from_checkpoint true` continues the latest checkpoint in output_dir exactly (or give a
checkpoint folder). The run's plan (data, parameters, steps, an estimated time, output) is printed
before any work; with no arguments at all the recipe prints the plan of the defaults and stops.
`--verbose` shows the libraries' warnings and progress bars (DeepSpeed, Accelerate, weight loading).
"""

import os
import sys

from maia_hf.errors import MaiaError
from maia_hf.registration import set_library_verbosity
from maia_hf.training import parse_arguments, train
from maia_hf.training.plan import check_init_from, describe_run

NO_ARGUMENTS = (
    "train_gpt2: nothing started: with no arguments this is the default multi-hour run above; pass --config FILE "
    "(e.g. recipes/configs/tiny.yaml, minutes on a CPU) or --max_steps N to start; see --help"
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        model_args, data_args, training_args = parse_arguments(argv)
        set_library_verbosity(training_args.verbose)
        if int(os.environ.get("RANK", "0")) == 0:
            print(describe_run(model_args, data_args, training_args), flush=True)
        if not argv:
            print(NO_ARGUMENTS, file=sys.stderr)
            return 2
        check_init_from(model_args)
        final = train(model_args, data_args, training_args)
    except MaiaError as exc:
        print(f"train_gpt2: error: {exc}", file=sys.stderr)
        return 2
    print(f"done: {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
