"""The decoding path: the lean loop draws generate()'s tokens; the lean decoder gives the model's logits."""

from __future__ import annotations

import pytest
import torch
from helpers import TINY_GPT
from transformers import LogitsProcessor

from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaLstmConfig, MaiaLstmForCausalLM
from maia_hf.generation import NotewiseConstraintProcessor, prompt_ids, read_prompt, sample
from maia_hf.generation.decoding import GenerationInterrupted, LeanGPT2Decoder, sample_with_sliding_window
from maia_hf.resources import LACRIMOSA_PROMPT


@pytest.mark.parametrize("settings", [{"top_k": 5}, {"top_k": 0, "top_p": 0.9, "temperature": 0.7}])
@pytest.mark.parametrize("kind", ["gpt", "lstm"])
def test_fast_sampling_loop_equals_generate(tokenizer, tiny_model, kind, settings):
    """The lean loop behind continue_piece draws generate()'s tokens, constraints and warpers included."""
    if kind == "gpt":
        model = tiny_model
    else:
        torch.manual_seed(0)
        config = MaiaLstmConfig(vocab_size=len(tokenizer), embedding_dim=8, hidden_size=32, num_layers=2)
        model = MaiaLstmForCausalLM(config).eval()
    opening = read_prompt(LACRIMOSA_PROMPT, tokenizer, prompt_bars=1)
    prompt = torch.tensor([prompt_ids(tokenizer, opening, None)])
    special = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    torch.manual_seed(11)
    expected = model.generate(
        prompt, max_new_tokens=40, do_sample=True, logits_processor=[NotewiseConstraintProcessor(tokenizer, 40)],
        **special, **settings,
    )  # fmt: skip
    torch.manual_seed(11)
    got = sample(model, prompt, 40, [NotewiseConstraintProcessor(tokenizer, 40)], **special, **settings)
    assert got.tolist() == expected.tolist()


def test_greedy_sampling_equals_generate(tokenizer, tiny_model):
    prompt = torch.tensor([prompt_ids(tokenizer, None, "bach")])
    expected = tiny_model.generate(prompt, max_new_tokens=20, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert sample(tiny_model, prompt, 20, do_sample=False, top_k=None).tolist() == expected.tolist()


@pytest.mark.parametrize(
    "attention",
    [
        {"attn_implementation": "sdpa"},
        {"attn_implementation": "maia_sparse_fixed", "sparse_block": 8, "sparse_summary": 2},
        {
            "attn_implementation": "maia_sparse_fixed",
            "sparse_block": 8,
            "sparse_summary": 2,
            "sparse_per_head_summary": True,
        },
        {"attn_implementation": "maia_sparse_strided", "sparse_block": 4, "sparse_summary": 2},
    ],
    ids=["dense", "fixed", "fixed-per-head", "strided"],
)
def test_lean_decoder_gives_the_models_own_logits(tokenizer, attention):
    """The decoding fast path (preallocated keys and values, no per-layer machinery) changes no logit."""
    torch.manual_seed(0)
    config = MaiaConfig(vocab_size=len(tokenizer), **{**TINY_GPT, "n_positions": 64, **attention})
    model = MaiaForCausalLM(config).eval()
    ids = torch.randint(4, 200, (2, 40))
    with torch.inference_mode():
        full = model(input_ids=ids).logits
        assert LeanGPT2Decoder.applies(model, 40)
        lean = LeanGPT2Decoder(model, batch=2, total_length=40)
        steps = [lean.prefill(ids[:, :13])] + [lean.step(ids[:, t]) for t in range(13, 39)]
    torch.testing.assert_close(torch.stack(steps, dim=1), full[:, 12:39], rtol=1e-5, atol=1e-5)
    assert not LeanGPT2Decoder.applies(model, 65)  # past the model's positions: the plain path


def test_sliding_window_keeps_the_head_and_follows_the_whole_piece(tokenizer, tiny_model):
    """96 positions, 300 tokens: each chunk sees <start> <composer> and the latest tokens, never more than 96."""
    seen = []
    forward = tiny_model.forward

    def spy(*args, **kwargs):
        ids = kwargs["input_ids"]
        if ids.shape[1] > 1:  # a chunk's prompt
            seen.append(ids[0, :2].tolist())
            assert ids.shape[1] <= 96
        return forward(*args, **kwargs)

    history = prompt_ids(tokenizer, None, "chopin")
    processor = NotewiseConstraintProcessor(tokenizer, None)
    tiny_model.forward = spy
    try:
        torch.manual_seed(3)
        (new,) = sample_with_sliding_window(
            tiny_model, history, 300, processor, top_k=5, eos_token_id=None, pad_token_id=tokenizer.pad_token_id
        )
    finally:
        del tiny_model.forward
    assert len(new) == 300 and len(seen) > 3 and all(head == history for head in seen)
    result = tokenizer.codec.decode(tokenizer.layout.codec_indices(new))
    assert (result.ignored_note_offs, result.restruck) == (0, 0)
    assert int(processor.now[0]) == result.total_steps  # the constraints' clock is the whole piece's


class _InterruptAfter(LogitsProcessor):
    """Ctrl-C at the ``n``-th step, as a user pressing it mid-generation (the scores pass through)."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __call__(self, input_ids, scores):
        self.calls += 1
        if self.calls > self.n:
            raise KeyboardInterrupt
        return scores


def test_ctrl_c_in_the_sliding_window_keeps_the_rows_sampled(tokenizer, tiny_model):
    """Past the first window (96 positions), the interruption carries every token drawn before it."""
    history = prompt_ids(tokenizer, None, "bach")
    special = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    torch.manual_seed(3)
    full = sample_with_sliding_window(tiny_model, history, 150, NotewiseConstraintProcessor(tokenizer, 400), **special)
    torch.manual_seed(3)
    constraints = NotewiseConstraintProcessor(tokenizer, 400)
    with pytest.raises(GenerationInterrupted) as stopped:
        sample_with_sliding_window(
            tiny_model, history, 150, constraints, logits_processor=[_InterruptAfter(120)], **special
        )
    assert isinstance(stopped.value, KeyboardInterrupt)  # a caller that does not look for it just stops
    (row,) = stopped.value.rows
    assert len(row) == 120 and row == full[0][:120]  # the same draws, up to the interruption


def test_ctrl_c_in_sample_carries_the_prompt_and_tokens(tokenizer, tiny_model):
    prompt = torch.tensor([prompt_ids(tokenizer, None, "bach")] * 2)
    with pytest.raises(GenerationInterrupted) as stopped:
        sample(tiny_model, prompt, 30, [_InterruptAfter(7)], pad_token_id=tokenizer.pad_token_id)
    assert stopped.value.ids.shape == (2, prompt.shape[1] + 7)
