"""A run that gains the fill-in-the-middle tokens: warm start and resume keep every old row, exactly."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaTokenizer
from maia_hf.data import FimTransform
from maia_hf.training import WindowBatches
from maia_hf.training.vocabulary import checkpoint_vocab_size, grown_checkpoint


def _old_tokenizer() -> MaiaTokenizer:
    return MaiaTokenizer(vocab={t: i for t, i in MaiaTokenizer().get_vocab().items() if not t.startswith("<fim_")})


def test_a_checkpoint_of_the_old_vocabulary_grows_its_rows_and_moments(tmp_path):
    old, new = len(_old_tokenizer()), len(MaiaTokenizer())
    embedding = torch.randn(old, 8)
    save_file({"transformer.wte.weight": embedding, "transformer.wpe.weight": torch.randn(16, 8)},
              str(tmp_path / "model.safetensors"))  # fmt: skip
    moments = {"step": torch.tensor(7.0), "exp_avg": torch.randn(old, 8), "exp_avg_sq": torch.rand(old, 8)}
    torch.save(
        {"state": {0: moments, 1: {"exp_avg": torch.randn(16, 8)}}, "param_groups": []}, tmp_path / "optimizer.bin"
    )
    (tmp_path / "trainer_state.json").write_text("{}")
    assert checkpoint_vocab_size(tmp_path) == old
    with grown_checkpoint(tmp_path, new) as folder:
        weights = load_file(str(folder / "model.safetensors"))
        state = torch.load(folder / "optimizer.bin", weights_only=True)["state"]
        assert (folder / "trainer_state.json").is_file()
    assert torch.equal(weights["transformer.wte.weight"][:old], embedding)
    assert torch.allclose(weights["transformer.wte.weight"][old:], embedding.mean(0).expand(new - old, 8))
    assert weights["transformer.wpe.weight"].shape == (16, 8)  # only the embedding's rows grow
    assert torch.equal(state[0]["exp_avg"][:old], moments["exp_avg"]) and not state[0]["exp_avg"][old:].any()
    assert state[0]["exp_avg_sq"].shape == (new, 8) and state[1]["exp_avg"].shape == (16, 8)
    with grown_checkpoint(tmp_path, old) as same:
        assert same == tmp_path  # nothing to grow: the checkpoint itself


def test_warm_start_from_a_model_saved_before_the_fim_tokens(tmp_path):
    from maia_hf.training import parse_arguments
    from maia_hf.training.model import build_model

    old_tokenizer = _old_tokenizer()
    torch.manual_seed(0)
    saved = MaiaForCausalLM(MaiaConfig(vocab_size=len(old_tokenizer), n_layer=1, n_head=2, n_embd=16, n_positions=32))
    saved.save_pretrained(tmp_path)
    old_tokenizer.save_pretrained(tmp_path)
    model_args, _, _ = parse_arguments(["--init_from", str(tmp_path), "--seq_len", "32"])
    tokenizer = MaiaTokenizer()
    model = build_model(model_args, tokenizer, 32)
    assert model.config.vocab_size == len(tokenizer)
    rows = model.get_input_embeddings().weight
    assert torch.equal(rows[: len(old_tokenizer)], saved.get_input_embeddings().weight)
    assert model.get_output_embeddings().weight.data_ptr() == rows.data_ptr()  # still tied


def test_fim_windows_are_drawn_the_same_in_every_run_and_only_at_the_rate():
    from datasets import Dataset

    tokenizer = MaiaTokenizer()
    text = " ".join(f"p{50 + i % 20} wait12 endp{50 + i % 20}" for i in range(40))
    windows = Dataset.from_dict({"input_ids": [tokenizer.encode_text(text)] * 40, "composer": ["bach"] * 40})
    make = lambda: WindowBatches(windows, 8, 512, 0, seed=1, fim=FimTransform(tokenizer, 0.5, seed=1))  # noqa: E731
    first, again = make(), make()
    for epoch, index in ((0, 0), (0, 3), (2, 1)):
        a, b = first.batch(epoch, index)["input_ids"], again.batch(epoch, index)["input_ids"]
        assert torch.equal(a, b)
    middles = sum(int((make().batch(0, i)["input_ids"] == tokenizer.layout.fim_middle).any(1).sum()) for i in range(5))
    assert 8 <= middles <= 32  # about half of 40 windows
    plain = WindowBatches(windows, 8, 512, 0, seed=1).batch(0, 0)["input_ids"]
    assert not (plain == tokenizer.layout.fim_middle).any()


def test_a_run_resumed_with_sounding_notes_goes_on_exactly_then_learns_the_new_input(tiny_corpus, tmp_path):
    import shutil
    import subprocess

    from training_runs import ENV, metrics, recipe
    from transformers import AutoModelForCausalLM

    common = ("--dataset_dir", tiny_corpus, "--num_samples", "0", "--eval_steps", "0", "--logging_steps", "1",
              "--save_steps", "20", "--max_steps", "24")  # fmt: skip
    first = tmp_path / "plain"
    process = subprocess.Popen(recipe(*common, "--output_dir", first), env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    process.wait()
    shutil.rmtree(first / "checkpoints" / "step-0000024", ignore_errors=True)
    (first / "checkpoints" / "latest").write_text("step-0000020")
    grown = tmp_path / "grown"
    shutil.copytree(first, grown)
    resume = ("--resume_from_checkpoint", "true")
    done = subprocess.run(recipe(*common, *resume, "--output_dir", first), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    done = subprocess.run(recipe(*common, *resume, "--sounding_notes", "true", "--output_dir", grown), env=ENV,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    plain_loss = {r["step"]: r["loss"] for r in metrics(first) if "loss" in r}
    grown_loss = {r["step"]: r["loss"] for r in metrics(grown) if "loss" in r}
    assert grown_loss[21] == pytest.approx(plain_loss[21], abs=1e-6)  # same weights, moments, data: same step
    assert grown_loss[24] != pytest.approx(plain_loss[24], abs=1e-6)  # then the new input is learned
    model = AutoModelForCausalLM.from_pretrained(grown / "checkpoints" / "step-0000024")
    assert model.config.sounding_notes and model.sounding.weight.abs().sum() > 0
