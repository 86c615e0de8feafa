"""The LSTM baseline: shape, loss, generate() with its state as cache, save/load, Auto classes."""

from __future__ import annotations

import pytest
import torch
from helpers import run_python
from transformers import AutoModelForCausalLM, pipeline

from maia_hf import MaiaLstmConfig, MaiaLstmForCausalLM


@pytest.fixture
def lstm():
    torch.manual_seed(0)
    return MaiaLstmForCausalLM(MaiaLstmConfig(hidden_size=48)).eval()


def test_default_shape_is_the_original_baseline():
    model = MaiaLstmForCausalLM(MaiaLstmConfig())
    assert model.embed_tokens.embedding_dim == 4
    assert (model.lstm.num_layers, model.lstm.hidden_size) == (2, 512)
    # 4-dim embeddings, two LSTM layers (4->512, 512->512) and the 512->276 output layer.
    expected = 276 * 4 + 4 * 512 * (4 + 512 + 2) + 4 * 512 * (512 + 512 + 2) + 512 * 276 + 276
    assert sum(p.numel() for p in model.parameters()) == expected


def test_loss_is_next_token_cross_entropy(lstm):
    ids = torch.tensor([[2, 250, 43, 191, 131, 3]])
    out = lstm(input_ids=ids, labels=ids)
    expected = torch.nn.functional.cross_entropy(out.logits[0, :-1], ids[0, 1:])
    torch.testing.assert_close(out.loss, expected)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"do_sample": False},
        {"do_sample": True, "top_k": 5, "num_return_sequences": 3},
        {"num_beams": 3, "do_sample": False},
    ],
    ids=["greedy", "top-k", "beam"],
)
def test_generate_with_and_without_cache_gives_the_same_tokens(lstm, kwargs):
    prompt = torch.tensor([[2, 250, 43, 191, 131]])
    torch.manual_seed(1)
    cached = lstm.generate(prompt, max_new_tokens=25, use_cache=True, **kwargs)
    torch.manual_seed(1)
    recomputed = lstm.generate(prompt, max_new_tokens=25, use_cache=False, **kwargs)
    assert cached.shape[1] == prompt.shape[1] + 25
    assert torch.equal(cached, recomputed)


def test_cache_carries_the_state(lstm):
    ids = torch.tensor([[2, 250, 43, 191, 131, 3, 60]])
    whole = lstm(input_ids=ids).logits[:, -1]
    first = lstm(input_ids=ids[:, :-1], use_cache=True)
    assert first.cache.get_seq_length() == 6
    torch.testing.assert_close(lstm(input_ids=ids[:, -1:], cache=first.cache).logits[:, -1], whole)


def test_save_load_and_auto_class(lstm, tmp_path):
    lstm.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded) is MaiaLstmForCausalLM
    prompt = torch.tensor([[2, 250, 43]])
    assert torch.equal(
        loaded.generate(prompt, max_new_tokens=10, do_sample=False),
        lstm.generate(prompt, max_new_tokens=10, do_sample=False),
    )


def test_pipeline_and_fresh_process(lstm, tokenizer, tmp_path):
    lstm.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    generator = pipeline("text-generation", model=str(tmp_path))
    specials = [i for t, i in tokenizer.get_vocab().items() if t.startswith("<")]
    (result,) = generator("p60 wait12 endp60", max_new_tokens=5, do_sample=False, suppress_tokens=specials)
    words = result["generated_text"].split()
    assert len(words) == 8 and all(w in tokenizer.get_vocab() for w in words)
    out = run_python(
        "import maia_hf, torch\nfrom transformers import AutoModelForCausalLM\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r})\n"
        "print(type(m).__name__, m.generate(torch.tensor([[2, 250]]), max_new_tokens=3).shape[1])\n"
    )
    assert out.split() == ["MaiaLstmForCausalLM", "5"]


def test_lstm_loads_safetensors_only(tmp_path):
    import torch
    from safetensors.torch import load_file

    model = MaiaLstmForCausalLM(MaiaLstmConfig(hidden_size=16, num_layers=1))
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    torch.save(load_file(weights), tmp_path / "pytorch_model.bin")  # the pickle format maia never reads
    weights.unlink()
    with pytest.raises(OSError):
        MaiaLstmForCausalLM.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="safetensors only"):
        MaiaLstmForCausalLM.from_pretrained(tmp_path, use_safetensors=False)
