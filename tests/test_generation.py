"""Generation: the constraint processor, bar-accurate prompts and endings, seeds, streaming, outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TINY_GPT
from hypothesis import given, settings
from hypothesis import strategies as st

from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaLstmConfig, MaiaLstmForCausalLM
from maia_hf.codec import NoteArray, Piece, TimeSignature
from maia_hf.compose import read_prompt
from maia_hf.errors import MaiaInputError, MaiaTokenError
from maia_hf.generation import NotewiseConstraintProcessor, continue_piece, prompt_ids, sample
from maia_hf.io import load_pieces
from maia_hf.resources import LACRIMOSA_PROMPT


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    torch.manual_seed(0)
    return MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **{**TINY_GPT, "n_positions": 96})).eval()


def sample_with_random_logits(tokenizer, prompt: list[int], budget, end_step, polyphony, seed, spikes, longest=None):
    """Drive the processor by hand with random logits (spiky, to tempt it into every kind of mistake)."""
    gen = torch.Generator().manual_seed(seed)
    processor = NotewiseConstraintProcessor(tokenizer, budget, polyphony, end_step, max_note_steps=longest)
    ids = torch.tensor([prompt])
    for _ in range(budget):
        scores = torch.randn(1, len(tokenizer), generator=gen) * spikes
        scores = processor(ids, scores)
        token = torch.multinomial(scores.softmax(-1), 1, generator=gen)
        ids = torch.cat([ids, token], dim=1)
        if token.item() == tokenizer.eos_token_id:
            break
    return ids[0, len(prompt) :].tolist(), processor


def assert_well_formed(tokenizer, prompt, new, polyphony):
    codec, offset = tokenizer.codec, tokenizer.codec_offset
    body = [i - offset for i in prompt[2:] + new if 0 <= i - offset < codec.size]
    result = codec.decode(np.array(body))
    assert (result.ignored_note_offs, result.closed_at_end, result.restruck) == (0, 0, 0)
    # Canonical: re-encoding the decoded notes gives the same words (up to a trailing rest, which
    # the notes alone cannot hold), so the order within steps is canonical and no note has zero length.
    while body and body[-1] >= codec.wait_offset:
        body.pop()
    assert codec.encode(result.notes).tolist() == body
    new_notes = result.notes.take(result.notes.start >= 48)  # the prompt ends at step 48
    events = sorted([(s, 1) for s in new_notes.start.tolist()] + [(e, -1) for e in new_notes.end.tolist()])
    assert max(np.cumsum([d for _, d in events]), default=0) <= polyphony
    return result


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    budget=st.integers(1, 120),
    polyphony=st.integers(1, 6),
    bars=st.sampled_from([None, 1, 2]),
    spikes=st.sampled_from([1.0, 8.0]),
    longest=st.sampled_from([None, 1, 5, 30]),
)
def test_random_logits_never_give_ill_formed_output(tokenizer, seed, budget, polyphony, bars, spikes, longest):
    prompt = prompt_ids(tokenizer, Piece(NoteArray.from_lists([60, 64], [0, 0], [12, 24])), "bach", end_step=48)
    end_step = None if bars is None else 48 + 48 * bars
    new, processor = sample_with_random_logits(tokenizer, prompt, budget, end_step, polyphony, seed, spikes, longest)
    assert len(new) <= budget
    assert new[-1] == tokenizer.eos_token_id  # every run closes its notes and ends within the budget
    result = assert_well_formed(tokenizer, prompt, new[:-1], polyphony)
    if end_step is not None and not processor.out_of_budget:
        assert result.total_steps == end_step  # stopped exactly at the bar line
    assert processor.steps == len(new)
    if longest is not None:  # one step over at most, where the order of offs within a step made it wait
        new_notes = result.notes.take(result.notes.start >= 48)
        assert (new_notes.end - new_notes.start).max(initial=0) <= longest + 1


def test_longest_note_rule_closes_a_held_note(tokenizer):
    # A model that only ever wants to wait: without the rule the note sounds to the end of the budget.
    prompt = prompt_ids(tokenizer, Piece(NoteArray.from_lists([60], [0], [6])), "bach", end_step=12)
    prompt = prompt[:-1] if tokenizer.convert_ids_to_tokens(prompt[-1]).startswith("wait") else prompt
    held = tokenizer.convert_tokens_to_ids(["p62", "endp62"])
    lengths = {}
    for longest in (None, 24):
        processor = NotewiseConstraintProcessor(tokenizer, 60, max_note_steps=longest)
        ids = torch.tensor([prompt + held[:1]])
        for _ in range(40):
            scores = torch.zeros(1, len(tokenizer))
            scores[0, tokenizer.convert_tokens_to_ids("wait12")] = 20.0
            scores[0, tokenizer.convert_tokens_to_ids("wait1")] = 10.0
            ids = torch.cat([ids, processor(ids, scores).argmax(-1, keepdim=True)], dim=1)
        words = tokenizer.convert_ids_to_tokens(ids[0, len(prompt) :].tolist())
        waits = (
            [int(w[4:]) for w in words[: words.index("endp62")] if w.startswith("wait")] if "endp62" in words else None
        )
        lengths[longest] = None if waits is None else sum(waits)
    assert lengths == {None: None, 24: 24}


def test_longest_note_must_be_positive(tokenizer):
    with pytest.raises(MaiaInputError, match="max_note_steps must be at least 1 step, got 0"):
        NotewiseConstraintProcessor(tokenizer, 10, max_note_steps=0)
    with pytest.raises(MaiaInputError, match="positive number of quarter notes .or None., got -3"):
        continue_piece(None, tokenizer, max_note_quarters=-3)


def test_processor_counts_its_interventions(tokenizer):
    prompt = prompt_ids(tokenizer, None, "bach")
    processor = NotewiseConstraintProcessor(tokenizer, 10)
    scores = torch.full((1, len(tokenizer)), -10.0)
    scores[0, tokenizer.convert_tokens_to_ids("endp60")] = 10.0  # a note-off for a silent pitch
    masked = processor(torch.tensor([prompt]), scores)
    assert processor.interventions == 1 and masked[0].argmax().item() != tokenizer.convert_tokens_to_ids("endp60")
    assert processor.masked_mass > 0.99


def test_constrained_generation_with_a_model(tokenizer, tiny_model):
    prompt = load_pieces(LACRIMOSA_PROMPT, tokenizer.codec)[0].first_bars(2)
    (result,) = continue_piece(tiny_model, tokenizer, prompt, bars=2, seed=0, progress=False)
    assert result.prompt_end == 144 and result.stats == {"ignored_note_offs": 0, "closed_at_end": 0, "restruck": 0}
    assert result.continuation.notes.start.min() >= 144 and result.piece.notes.end.max() <= 288
    assert [(ts.numerator, ts.denominator) for ts in result.piece.time_signatures] == [(12, 8)]
    assert [round(t.qpm) for t in result.piece.tempos] == [65]


def test_long_continuation_slides_the_window(tokenizer, tiny_model):
    # 96 positions and a 200-token budget: several chunks; the constraints follow the whole piece.
    (result,) = continue_piece(tiny_model, tokenizer, None, max_new_tokens=200, seed=1, progress=False)
    assert result.tokens > 96
    assert result.stats == {"ignored_note_offs": 0, "closed_at_end": 0, "restruck": 0}


def test_seed_reproduces_the_output(tokenizer, tiny_model):
    first = continue_piece(tiny_model, tokenizer, None, max_new_tokens=60, seed=7, progress=False)[0]
    again = continue_piece(tiny_model, tokenizer, None, max_new_tokens=60, seed=7, progress=False)[0]
    other = continue_piece(tiny_model, tokenizer, None, max_new_tokens=60, seed=8, progress=False)[0]
    assert first.words == again.words and first.words != other.words


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
    opening = load_pieces(LACRIMOSA_PROMPT, tokenizer.codec)[0].first_bars(1)
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
    from maia_hf.generation import _LeanGPT2

    torch.manual_seed(0)
    config = MaiaConfig(vocab_size=len(tokenizer), **{**TINY_GPT, "n_positions": 64, **attention})
    model = MaiaForCausalLM(config).eval()
    ids = torch.randint(4, 200, (2, 40))
    with torch.inference_mode():
        full = model(input_ids=ids).logits
        assert _LeanGPT2.applies(model, 40)
        lean = _LeanGPT2(model, batch=2, total_length=40)
        steps = [lean.prefill(ids[:, :13])] + [lean.step(ids[:, t]) for t in range(13, 39)]
    torch.testing.assert_close(torch.stack(steps, dim=1), full[:, 12:39], rtol=1e-5, atol=1e-5)
    assert not _LeanGPT2.applies(model, 65)  # past the model's positions: the plain path


def test_streamer_hands_over_every_note(tokenizer, tiny_model):
    notes = []
    (result,) = continue_piece(
        tiny_model, tokenizer, None, max_new_tokens=80, seed=2, progress=False, on_note=lambda *n: notes.append(n)
    )
    assert sorted(notes) == sorted(result.continuation.notes.as_tuples())


class TestPrompts:
    def test_prompt_bars_is_bar_accurate(self):
        prompt = read_prompt(str(LACRIMOSA_PROMPT), prompt_bars=3)
        assert prompt.notes.end.max() == 3 * 72 and prompt.notes.start.max() < 3 * 72
        full = read_prompt(str(LACRIMOSA_PROMPT))
        assert prompt.notes.as_tuples() == [(p, s, min(e, 216)) for p, s, e in full.notes.as_tuples() if s < 216]

    def test_bars_follow_a_time_signature_change(self):
        piece = Piece(
            NoteArray.from_lists([60, 62, 64], [0, 36, 72], [36, 72, 144]),
            time_signatures=[TimeSignature(0, 3, 4), TimeSignature(72, 2, 4)],
        )
        assert piece.first_bars(3).notes.as_tuples() == [(60, 0, 36), (62, 36, 72), (64, 72, 96)]

    def test_notewise_text_prompt_and_unknown_word(self):
        assert read_prompt("p60 wait12 endp60").notes.as_tuples() == [(60, 0, 12)]
        with pytest.raises(MaiaTokenError, match="unknown word 'p6O' at position 0 of the prompt"):
            read_prompt("p6O wait12 endp60")

    def test_prompt_is_padded_to_its_bar_line(self, tokenizer):
        piece = Piece(NoteArray.from_lists([60], [0], [30]), time_signatures=[TimeSignature(0, 4, 4)])
        words = tokenizer.convert_ids_to_tokens(prompt_ids(tokenizer, piece, "bach", end_step=48))
        assert words == ["<start>", "<composer:bach>", "p60", "wait30", "endp60", "wait18"]
