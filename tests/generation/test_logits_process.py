"""The notewise constraints: random logits never give ill-formed text; each rule does what it says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from maia_hf.codec import NoteArray, Piece
from maia_hf.errors import MaiaInputError
from maia_hf.generation import NotewiseConstraintProcessor, continue_piece, prompt_ids


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
    codec, layout = tokenizer.codec, tokenizer.layout
    body = layout.codec_indices(prompt[2:] + new).tolist()
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


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), length=st.integers(1, 150), spikes=st.sampled_from([1.0, 8.0]))
def test_without_a_budget_the_text_stays_well_formed_and_need_not_end(tokenizer, seed, length, spikes):
    """No budget (text-generation): every word is allowed by the grammar, but nothing forces <end>."""
    prompt = prompt_ids(tokenizer, Piece(NoteArray.from_lists([60, 64], [0, 0], [12, 24])), "bach", end_step=48)
    gen = torch.Generator().manual_seed(seed)
    processor = NotewiseConstraintProcessor(tokenizer, None, 4, max_note_steps=30)
    ids = torch.tensor([prompt])
    eos = tokenizer.convert_tokens_to_ids("<end>")
    for _ in range(length):
        scores = torch.randn(1, len(tokenizer), generator=gen) * spikes
        scores[0, eos] = -1e9  # a model that never wants to stop
        ids = torch.cat([ids, torch.multinomial(processor(ids, scores).softmax(-1), 1, generator=gen)], dim=1)
    new = ids[0, len(prompt) :].tolist()
    assert len(new) == length and eos not in new and not processor.out_of_budget
    codec = tokenizer.codec
    result = codec.decode(tokenizer.layout.codec_indices(prompt + new))
    assert (result.ignored_note_offs, result.restruck) == (0, 0)  # notes may still sound at the end


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), budget=st.integers(1, 120), bars=st.sampled_from([None, 1, 2]))
def test_a_piece_from_nothing_begins_with_a_note(tokenizer, seed, budget, bars):
    """From an empty prompt the first music word is a note, never a rest, and the text stays well formed
    (and ends at the bar line) whatever the logits."""
    prompt = prompt_ids(tokenizer, None, "bach")
    end_step = None if bars is None else 48 * bars
    processor = NotewiseConstraintProcessor(tokenizer, budget, 4, end_step)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.tensor([prompt])
    for _ in range(budget):
        scores = torch.randn(1, len(tokenizer), generator=gen) * 8.0
        scores[0, tokenizer.convert_tokens_to_ids("wait48")] += 20.0  # a model that starts with silence
        ids = torch.cat([ids, torch.multinomial(processor(ids, scores).softmax(-1), 1, generator=gen)], dim=1)
        if ids[0, -1].item() == tokenizer.eos_token_id:
            break
    words = tokenizer.convert_ids_to_tokens(ids[0, len(prompt) :].tolist())
    assert words[-1] == "<end>"
    assert not words[0].startswith("wait")  # a note (or <end> when the budget allows nothing else)
    result = tokenizer.codec.decode(tokenizer.layout.codec_indices(ids[0, 2:-1].tolist()))
    assert (result.ignored_note_offs, result.closed_at_end, result.restruck) == (0, 0, 0)
    if end_step is not None and not processor.out_of_budget:
        assert result.total_steps == end_step


def test_a_rest_may_open_a_piece_that_asks_for_it(tokenizer):
    """``leading_rest=True`` (infilling), or a prompt that has begun: the model's rest is kept."""
    wait = tokenizer.convert_tokens_to_ids("wait48")
    scores = torch.zeros(1, len(tokenizer))
    scores[0, wait] = 20.0
    scores[0, tokenizer.convert_tokens_to_ids("p62")] = 1.0  # the model's second choice
    empty = torch.tensor([prompt_ids(tokenizer, None, "bach")])
    begun = torch.tensor([prompt_ids(tokenizer, Piece(NoteArray.from_lists([60], [0], [12])), "bach", end_step=12)])
    first = {
        "empty": NotewiseConstraintProcessor(tokenizer, 50)(empty, scores).argmax().item(),
        "leading_rest": NotewiseConstraintProcessor(tokenizer, 50, leading_rest=True)(empty, scores).argmax().item(),
        "begun": NotewiseConstraintProcessor(tokenizer, 50)(begun, scores).argmax().item(),
    }
    assert first["leading_rest"] == first["begun"] == wait
    assert tokenizer.convert_ids_to_tokens(first["empty"]) == "p62"


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


def test_a_model_with_more_ids_than_the_tokenizer_never_samples_them(tokenizer):
    """A model's vocabulary may be padded past the tokenizer's: the extra ids are masked, not a shape error."""
    processor = NotewiseConstraintProcessor(tokenizer, 10)
    scores = torch.zeros(1, len(tokenizer) + 7)
    scores[0, -1] = 50.0
    masked = processor(torch.tensor([prompt_ids(tokenizer, None, None)]), scores)
    assert masked.shape == scores.shape and torch.isinf(masked[0, len(tokenizer) :]).all()
    assert processor.interventions == 1
