"""Every recipe key is checked before any work: one line naming the key, the value and what is allowed."""

from __future__ import annotations

import dataclasses
import subprocess
import warnings

import pytest
from helpers import REPO
from training_runs import ENV, TINY, recipe

from maia_hf.errors import MaiaInputError
from maia_hf.training import DataArguments, MaiaTrainingArguments, ModelArguments, parse_arguments
from maia_hf.training.argument_checks import ALLOWED

BAD_COMMAND_LINES = {
    "batch-size-fraction": (
        ["--per_device_train_batch_size", "8.5"],
        "per_device_train_batch_size must be a whole number >= 1, got '8.5'",
    ),
    "batch-size-zero": (
        ["--per_device_train_batch_size", "0"],
        "per_device_train_batch_size must be a whole number >= 1, got 0",
    ),
    "learning-rate-negative": (["--learning_rate", "-1"], "learning_rate must be a number > 0, got -1.0"),
    "learning-rate-nan": (["--learning_rate", "nan"], "learning_rate must be a number > 0, got nan"),
    "heads-do-not-divide": (
        ["--n_head", "3", "--n_embd", "256"],
        "n_head 3 does not divide n_embd 256; give n_head one of 1, 2, 4, 8, 16, 32, 64",
    ),
    "heads-do-not-divide-the-preset": (
        ["--n_head", "3"],
        "n_head 3 does not divide n_embd 256 (preset maia-seed's); give n_head one of 1, 2, 4, 8",
    ),
    "max-steps-zero": (
        ["--max_steps", "0"],
        "max_steps must be -1 (train num_train_epochs epochs) or a whole number >= 1, got 0",
    ),
    "max-steps-negative": (
        ["--max_steps", "-5"],
        "max_steps must be -1 (train num_train_epochs epochs) or a whole number >= 1, got -5",
    ),
    "mixed-precision-fp8": (
        ["--mixed_precision", "fp8"],
        "mixed_precision 'fp8' in the command line is not one of auto, no, bf16, fp16",
    ),
    "attention-flash": (
        ["--attn_implementation", "flash"],
        "attn_implementation must be one of sdpa, eager, maia_sparse_fixed or maia_sparse_strided, got 'flash'",
    ),
    "warmup-negative": (["--warmup_steps", "-1"], "warmup_steps must be a whole number >= 0, got -1"),
    "eval-steps-negative": (["--eval_steps", "-1"], "eval_steps must be a whole number >= 0, got -1"),
    "save-steps-fraction": (["--save_steps", "2.5"], "save_steps must be a whole number >= 0, got '2.5'"),
    "keep-no-checkpoint": (
        ["--save_total_limit", "0"],
        "save_total_limit must be a whole number >= 1 or null (keep all), got 0",
    ),
    "weight-decay-negative": (["--weight_decay", "-0.1"], "weight_decay must be a number >= 0, got -0.1"),
    "accumulation-zero": (
        ["--gradient_accumulation_steps", "0"],
        "gradient_accumulation_steps must be a whole number >= 1, got 0",
    ),
    "seq-len-too-short": (["--seq_len", "2"], "seq_len must be a whole number >= 4, got 2"),
    "dropout-one": (["--dropout", "1"], "dropout must be a number in [0, 1), got 1.0"),
    "seed-negative": (["--seed", "-1"], "seed must be a whole number from 0 to 4,294,967,295, got -1"),
    "fim-rate-above-one": (["--fim_rate", "1.5"], "fim_rate must be a number in [0, 1], got 1.5"),
    "fim-max-bars-zero": (["--fim_max_bars", "0"], "fim_max_bars must be a whole number >= 1, got 0"),
    "fractions-leave-no-training": (
        ["--validation_fraction", "0.6", "--test_fraction", "0.5"],
        "validation_fraction 0.6 and test_fraction 0.5 leave no pieces for training; together they must be below 1",
    ),
    "context-shorter-than-window": (
        ["--n_positions", "64", "--seq_len", "128"],
        "n_positions 64 is shorter than seq_len 128",
    ),
    "zero-epochs": (["--num_train_epochs", "0"], "num_train_epochs must be above 0 when max_steps is -1, got 0"),
    "unknown-model-type": (["--model_type", "rnn"], "model_type must be one of gpt or lstm, got 'rnn'"),
    "unknown-backend": (["--sparse_backend", "cuda"], "sparse_backend must be one of sdpa, flex or split, got 'cuda'"),
    "not-a-switch": (["--bf16", "maybe"], "argument --bf16: Truthy value expected: got maybe"),
    "key-without-value": (["--max_steps"], "argument --max_steps/--max-steps: expected one argument"),
    "stray-word": (["foo"], "unexpected 'foo' on the command line; give settings as --key value"),
    "transpositions-zero": (["--transpositions", "0"], "transpositions '0': a count of keys must be at least 1"),
    "empty-output-dir": (["--output_dir="], "output_dir must be a non-empty string, got ''"),
}


@pytest.mark.parametrize(("argv", "message"), BAD_COMMAND_LINES.values(), ids=BAD_COMMAND_LINES.keys())
def test_a_bad_command_line_value_is_one_line_naming_key_value_and_range(argv, message):
    with pytest.raises(MaiaInputError) as raised:
        parse_arguments(argv)
    text = str(raised.value)
    assert message in text and "\n" not in text


BAD_YAML = {
    "batch-size-fraction": (
        "per_device_train_batch_size: 8.5\n",
        "per_device_train_batch_size must be a whole number >= 1, got 8.5",
    ),
    "learning-rate-list": ("learning_rate: [0.1]\n", "learning_rate must be a number > 0, got [0.1]"),
    "learning-rate-null": ("learning_rate: null\n", "learning_rate must be a number > 0, got null"),
    "heads-do-not-divide": ("n_head: 3\nn_embd: 256\n", "n_head 3 does not divide n_embd 256"),
    "max-steps-zero": (
        "max_steps: 0\n",
        "max_steps must be -1 (train num_train_epochs epochs) or a whole number >= 1, got 0",
    ),
    "a-switch-given-a-number": ("fp16: 2\n", "fp16 must be true or false, got 2"),
    "sources-not-strings": ("data_sources: [1, 2]\n", "data_sources must be a list of sources"),
}


@pytest.mark.parametrize(("text", "message"), BAD_YAML.values(), ids=BAD_YAML.keys())
def test_a_bad_yaml_value_names_the_file(tmp_path, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(MaiaInputError) as raised:
        parse_arguments(["--config", str(config)])
    assert str(raised.value).startswith(message) and str(raised.value).endswith(f"(in '{config}')")


def test_the_command_line_value_wins_over_a_bad_yaml_one(tmp_path):
    config = tmp_path / "zero.yaml"
    config.write_text("max_steps: 0\n")
    assert parse_arguments(["--config", str(config), "--max_steps", "3"])[2].max_steps == 3


@pytest.mark.parametrize(
    ("text", "where"),
    [("max_steps: 10\n  bad: [\n", "line 2, column 6: mapping values are not allowed here"),
     ("max_steps: 10\nlearning_rate: [0.1\n", "line 3, column 1: expected ',' or ']'")],
    ids=["indentation", "unclosed-list"],
)  # fmt: skip
def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path, text, where):
    config = tmp_path / "broken.yaml"
    config.write_text(text)
    with pytest.raises(MaiaInputError, match=rf"^'{config}' is not valid YAML, {where}"):
        parse_arguments(["--config", str(config)])


def test_a_folder_or_binary_file_as_config_is_refused(tmp_path):
    with pytest.raises(MaiaInputError, match="is a folder; give a YAML file"):
        parse_arguments(["--config", str(tmp_path)])
    binary = tmp_path / "x.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(MaiaInputError, match="cannot be read .*; give a UTF-8 YAML file"):
        parse_arguments(["--config", str(binary)])


def test_python_construction_is_checked_too():
    with pytest.raises(MaiaInputError, match="per_device_train_batch_size must be a whole number >= 1, got 0"):
        MaiaTrainingArguments(per_device_train_batch_size=0)
    with pytest.raises(MaiaInputError, match="dropout must be a number in"):
        ModelArguments(dropout=1.5)
    assert DataArguments(fim_rate=1, fim_max_bars=2).fim_rate == 1.0  # a YAML int for a float key is a float


def test_the_fill_in_the_middle_keys_default_to_off():
    data = DataArguments()
    assert (data.fim_rate, data.fim_max_bars) == (0.0, 4)
    _, data, _ = parse_arguments(["--config", str(TINY), "--fim_rate", "0.5", "--fim_max_bars", "2"])
    assert (data.fim_rate, data.fim_max_bars) == (0.5, 2)


def test_every_key_has_its_allowed_values():
    fields = {f.name for cls in (ModelArguments, DataArguments, MaiaTrainingArguments) for f in dataclasses.fields(cls)}
    assert fields == set(ALLOWED)


def test_the_running_campaign_keeps_parsing():
    """maia-small's campaign resumes with these arguments (recipes/train_maia_small.sh and its launcher)."""
    small = str(REPO / "recipes" / "configs" / "maia-small.yaml")
    resume = ["--config", small, "--dataset_dir", "/c", "--output_dir", "/r", "--resume_from_checkpoint", "true"]
    launcher = ["--config", small, "--init_from", "/r/init", "--max_steps", "8000", "--warmup_steps", "50",
                "--learning_rate", "5e-4", "--min_lr_ratio", "0.1", "--batch_size", "16", "--dropout", "0.0",
                "--eval_every", "250", "--eval_batches", "0", "--save_every", "50", "--keep_checkpoints", "3",
                "--num_samples", "0", "--log_every", "10", "--mixed_precision", "no", "--sparse_backend", "split",
                "--resume", "false"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the launcher's old key names
        for argv in (resume, launcher):
            model, data, train = parse_arguments(argv)
            assert model.sparse_backend == "split" and data.seq_len == 512 and train.max_steps == 8000


def test_the_recipe_prints_one_line_and_exits_2(tmp_path):
    done = subprocess.run(
        recipe("--output_dir", tmp_path / "run", "--max_steps", "0"), env=ENV, capture_output=True, text=True
    )
    assert done.returncode == 2 and not (tmp_path / "run").exists()
    assert done.stderr.strip().splitlines() == [
        "train_gpt2: error: max_steps must be -1 (train num_train_epochs epochs) or a whole number >= 1, got 0"
    ]
