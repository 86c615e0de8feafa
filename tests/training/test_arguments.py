"""The recipe's arguments: precedence, unknown keys, Hugging Face names, the deprecated names of the last release."""

from __future__ import annotations

import warnings

import pytest
from helpers import REPO
from training_runs import TINY

from maia_hf.errors import MaiaInputError
from maia_hf.training import DEPRECATED_KEYS, MaiaTrainingArguments, parse_arguments

RECIPES = ["maia-seed", "maia-small", "lstm-baseline", "gpt2-117m-transfer", "gpt2-345m-transfer", "sparse-fixed-4k",
           "tiny"]  # fmt: skip


class TestArguments:
    def test_defaults_then_yaml_then_command_line(self):
        model, data, train = parse_arguments(["--config", str(TINY), "--max_steps", "7"])
        assert train.max_steps == 7  # command line beats YAML (60)
        assert train.per_device_train_batch_size == 8 and model.n_layer == 2  # from the YAML
        assert train.weight_decay == MaiaTrainingArguments().weight_decay  # a default the YAML leaves alone

    def test_unknown_yaml_key(self, tmp_path):
        config = tmp_path / "bad.yaml"
        config.write_text("max_step: 10\n")
        with pytest.raises(MaiaInputError, match=r"unknown key 'max_step' in '.*bad.yaml'; did you mean max_steps"):
            parse_arguments(["--config", str(config)])

    def test_unknown_command_line_key(self):
        with pytest.raises(MaiaInputError, match=r"unknown key 'lerning_rate' in the command line; did you mean"):
            parse_arguments(["--config", str(TINY), "--lerning_rate", "0.1"])

    def test_missing_config_file(self):
        with pytest.raises(MaiaInputError, match="config file 'nope.yaml' does not exist"):
            parse_arguments(["--config", "nope.yaml"])

    @pytest.mark.parametrize("name", RECIPES)
    def test_every_recipe_config_parses(self, name):
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)  # and uses no deprecated key
            parse_arguments(["--config", str(REPO / "recipes" / "configs" / f"{name}.yaml")])

    def test_help_lists_the_hugging_face_names(self, capsys):
        with pytest.raises(SystemExit) as exit_:
            parse_arguments(["--help"])
        assert exit_.value.code == 0
        assert "--per_device_train_batch_size" in capsys.readouterr().out


class TestHuggingFaceNames:
    def test_eval_batch_size_defaults_to_the_training_one(self):
        _, _, train = parse_arguments(["--per_device_train_batch_size", "4"])
        assert train.per_device_eval_batch_size == 4
        _, _, train = parse_arguments(["--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "9"])
        assert train.per_device_eval_batch_size == 9

    @pytest.mark.parametrize(
        ("given", "expected"),
        [("true", True), ("false", None), ("runs/x/checkpoints/step-0000010", "runs/x/checkpoints/step-0000010")],
        ids=["latest", "no", "a-folder"],
    )
    def test_resume_from_checkpoint_is_a_switch_or_a_folder(self, given, expected):
        _, _, train = parse_arguments(["--resume_from_checkpoint", given])
        assert train.resume_from_checkpoint == expected

    def test_max_steps_defaults_to_epochs(self):
        _, _, train = parse_arguments(["--num_train_epochs", "2"])
        assert (train.max_steps, train.num_train_epochs) == (-1, 2.0)

    def test_bf16_defaults_to_auto_and_excludes_fp16(self):
        assert MaiaTrainingArguments().bf16 is None and MaiaTrainingArguments().fp16 is False
        with pytest.raises(MaiaInputError, match="bf16 and fp16 are both true"):
            parse_arguments(["--bf16", "true", "--fp16", "true"])


RENAMED = {old: new for old, new in DEPRECATED_KEYS.items() if old != "mixed_precision"}
VALUES = {"batch_size": "4", "beta2": "0.95", "eval_every": "7", "save_every": "9", "log_every": "3",
          "keep_checkpoints": "5", "resume": "true", "compile": "true"}  # fmt: skip
PARSED = {"4": 4, "0.95": 0.95, "7": 7, "9": 9, "3": 3, "5": 5, "true": True}


class TestDeprecatedKeys:
    @pytest.mark.parametrize("old", sorted(RENAMED))
    def test_an_old_yaml_key_sets_its_new_one_with_a_warning(self, old, tmp_path):
        config = tmp_path / "old.yaml"
        config.write_text(f"{old}: {VALUES[old]}\n")
        with pytest.warns(FutureWarning, match=rf"'{old}' is deprecated: use '{RENAMED[old]}'"):
            _, _, train = parse_arguments(["--config", str(config)])
        assert getattr(train, RENAMED[old]) == PARSED[VALUES[old]]

    @pytest.mark.parametrize("old", sorted(RENAMED))
    def test_an_old_command_line_key_sets_its_new_one_with_a_warning(self, old):
        with pytest.warns(FutureWarning, match=rf"'{old}' is deprecated: use '{RENAMED[old]}'"):
            _, _, train = parse_arguments([f"--{old}", VALUES[old]])
        assert getattr(train, RENAMED[old]) == PARSED[VALUES[old]]

    def test_a_bare_old_flag_means_true(self):
        with pytest.warns(FutureWarning, match="'compile' is deprecated: use 'torch_compile'"):
            _, _, train = parse_arguments(["--compile"])
        assert train.torch_compile is True

    def test_an_old_command_line_key_beats_the_yaml(self):
        with pytest.warns(FutureWarning, match="'batch_size' is deprecated"):
            _, _, train = parse_arguments(["--config", str(TINY), "--batch_size", "2"])
        assert train.per_device_train_batch_size == 2  # the YAML says 8

    @pytest.mark.parametrize(
        ("value", "bf16", "fp16"),
        [("auto", None, False), ("no", False, False), ("bf16", True, False), ("fp16", False, True)],
    )
    def test_mixed_precision_becomes_bf16_and_fp16(self, value, bf16, fp16, tmp_path):
        config = tmp_path / "old.yaml"
        config.write_text(f"mixed_precision: {value}\n")  # a bare `no` is YAML's false
        with pytest.warns(FutureWarning, match="'mixed_precision' is deprecated: use 'bf16' and 'fp16'"):
            _, _, train = parse_arguments(["--config", str(config)])
        assert (train.bf16, train.fp16) == (bf16, fp16)
        with pytest.warns(FutureWarning, match="'mixed_precision' is deprecated"):
            _, _, train = parse_arguments(["--config", str(TINY), f"--mixed_precision={value}"])
        assert (train.bf16, train.fp16) == (bf16, fp16)

    def test_an_old_and_its_new_key_together_are_an_error(self, tmp_path):
        config = tmp_path / "both.yaml"
        config.write_text("batch_size: 4\nper_device_train_batch_size: 8\n")
        with pytest.raises(MaiaInputError, match=r"gives both 'batch_size' and 'per_device_train_batch_size'"):
            parse_arguments(["--config", str(config)])
        with pytest.raises(MaiaInputError, match=r"the command line gives both 'eval_every' and 'eval_steps'"):
            parse_arguments(["--eval_every", "5", "--eval_steps", "5"])
        with pytest.raises(MaiaInputError, match=r"gives both 'mixed_precision' and 'bf16'"):
            parse_arguments(["--mixed_precision", "bf16", "--bf16", "true"])

    def test_an_unknown_mixed_precision_names_the_choices(self):
        with pytest.raises(MaiaInputError, match=r"mixed_precision 'fp8' in the command line is not one of auto"):
            parse_arguments(["--mixed_precision", "fp8"])

    def test_the_old_class_name_still_imports(self):
        import maia_hf.training

        with pytest.warns(FutureWarning, match="'TrainArguments' is deprecated: use 'MaiaTrainingArguments'"):
            assert maia_hf.training.TrainArguments is MaiaTrainingArguments


def test_config_given_twice_is_one_clear_error():
    with pytest.raises(MaiaInputError, match="--config is given more than once"):
        parse_arguments(["--config", "recipes/configs/tiny.yaml", "--config", "recipes/configs/maia-seed.yaml"])
