"""GPT-2 -> maia transfer, on a tiny GPT-2 and a tiny byte-level BPE built here."""

from __future__ import annotations

import pytest
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from maia_hf import MaiaForCausalLM
from maia_hf.errors import MaiaInputError
from maia_hf.transfer import bpe_pieces, from_gpt2

TEXT = [
    "p60 p64 wait12 endp60 endp64 p62 wait6 endp62 wait48",
    "the composer wrote a prelude and a fugue for the piano in the start and at the end",
    "start end composer unknown bach mozart chopin pad unk wait endp p",
] * 20


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TEXT, vocab_size=400, min_frequency=1, special_tokens=["<|endoftext|>"])
    gpt2_tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(gpt2_tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2)
    model = GPT2LMHeadModel(config).eval()
    path = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(path)
    gpt2_tokenizer.save_pretrained(path)
    return model, gpt2_tokenizer, path


def test_blocks_and_positions_are_copied(tiny_gpt2, tokenizer):
    source, gpt2_tokenizer, _ = tiny_gpt2
    model = from_gpt2(source, tokenizer, gpt2_tokenizer)
    assert isinstance(model, MaiaForCausalLM) and model.config.n_layer == 2 and model.config.n_embd == 32
    target = model.transformer.state_dict()
    for name, tensor in source.transformer.state_dict().items():
        if not name.startswith("wte."):
            assert torch.equal(target[name], tensor), name


@pytest.mark.parametrize("token", ["p60", "endp108", "wait12", "<composer:mozart>", "<start>"])
def test_each_row_is_the_mean_of_its_bpe_pieces(tiny_gpt2, tokenizer, token):
    source, gpt2_tokenizer, _ = tiny_gpt2
    model = from_gpt2(source, tokenizer, gpt2_tokenizer)
    pieces = bpe_pieces(gpt2_tokenizer, token)
    assert len(pieces) >= 1
    expected = source.transformer.wte.weight[pieces].mean(dim=0)
    torch.testing.assert_close(model.transformer.wte.weight[tokenizer.convert_tokens_to_ids(token)], expected)


def test_head_is_tied_and_vocabulary_is_maias(tiny_gpt2, tokenizer):
    source, gpt2_tokenizer, _ = tiny_gpt2
    model = from_gpt2(source, tokenizer, gpt2_tokenizer)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    assert model.config.vocab_size == len(tokenizer) and model.config.eos_token_id == tokenizer.eos_token_id


def test_transfer_from_a_path_then_save_and_train_a_step(tiny_gpt2, tokenizer, tmp_path):
    _, _, path = tiny_gpt2
    model = from_gpt2(str(path), tokenizer)
    ids = torch.tensor([tokenizer.encode_text("p60 wait12 endp60 p62 wait12 endp62", composer="bach")])
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss)
    model.save_pretrained(tmp_path)
    assert MaiaForCausalLM.from_pretrained(tmp_path).config.n_layer == 2


def test_model_object_needs_its_tokenizer(tiny_gpt2, tokenizer):
    with pytest.raises(ValueError, match="needs gpt2_tokenizer="):
        from_gpt2(tiny_gpt2[0], tokenizer)


def test_the_model_class_transfers_like_the_old_function(tiny_gpt2, tokenizer):
    source, gpt2_tokenizer, _ = tiny_gpt2
    model = MaiaForCausalLM.from_gpt2(source, tokenizer, gpt2_tokenizer)
    old = from_gpt2(source, tokenizer, gpt2_tokenizer)
    assert torch.equal(model.transformer.wte.weight, old.transformer.wte.weight)


def test_an_unreachable_checkpoint_says_where_the_weights_must_be(tokenizer, tmp_path):
    with pytest.raises(MaiaInputError, match="local Hugging Face cache"):
        MaiaForCausalLM.from_gpt2(str(tmp_path / "no-such-gpt2"), tokenizer)
