"""Continuations: bar-accurate prompts and endings, long pieces, seeds, streaming, ids as written."""

from __future__ import annotations

import pytest

from maia_hf.codec import NoteArray, Piece, TimeSignature
from maia_hf.errors import MaiaTokenError
from maia_hf.generation import continue_ids, continue_piece, prompt_end, prompt_ids, read_prompt
from maia_hf.resources import LACRIMOSA_PROMPT


def test_constrained_generation_with_a_model(tokenizer, tiny_model):
    prompt = read_prompt(LACRIMOSA_PROMPT, tokenizer, prompt_bars=2)
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


def test_greedy_continuation_is_the_same_every_time(tokenizer, tiny_model):
    runs = continue_piece(tiny_model, tokenizer, None, max_new_tokens=40, do_sample=False, num_return_sequences=2)
    assert runs[0].words == runs[1].words and runs[0].tokens > 0


def test_streamer_hands_over_every_note(tokenizer, tiny_model):
    notes = []
    (result,) = continue_piece(
        tiny_model, tokenizer, None, max_new_tokens=80, seed=2, progress=False, on_note=lambda *n: notes.append(n)
    )
    assert sorted(notes) == sorted(result.continuation.notes.as_tuples())


def test_prompt_is_padded_to_its_bar_line(tokenizer):
    piece = Piece(NoteArray.from_lists([60], [0], [30]), time_signatures=[TimeSignature(0, 4, 4)])
    words = tokenizer.convert_ids_to_tokens(prompt_ids(tokenizer, piece, "bach", end_step=48))
    assert words == ["<start>", "<composer:bach>", "p60", "wait30", "endp60", "wait18"]
    assert prompt_end(piece, 12) == 48


def test_composer_in_any_spelling(tokenizer):
    assert prompt_ids(tokenizer, None, "C.P.E. Bach")[1] == tokenizer.convert_tokens_to_ids("<composer:cpe_bach>")
    with pytest.raises(MaiaTokenError, match="composer 'nobody' has no token"):
        prompt_ids(tokenizer, None, "nobody")


def test_continue_ids_keeps_the_prompt_as_written(tokenizer, tiny_model):
    """A sounding note stays sounding (no re-encoding, no bar padding); the budget does not force <end>."""
    ids = tokenizer.convert_tokens_to_ids(["p60", "wait5"])
    (new,) = continue_ids(tiny_model, tokenizer, ids, max_new_tokens=150, seed=0, max_note_quarters=None)
    assert len(new) == 150 or new[-1] == tokenizer.eos_token_id
    result = tokenizer.codec.decode(tokenizer.layout.codec_indices(ids + new))
    assert (result.ignored_note_offs, result.restruck) == (0, 0)
    assert "p60" not in tokenizer.convert_ids_to_tokens(new[: new.index(tokenizer.convert_tokens_to_ids("endp60"))])


def test_ids_from_tokenizer_call_get_the_composer_token_after_start(tokenizer, tiny_model):
    """``tokenizer(text)`` puts <start> first: the composer token still goes after it, as in training."""
    words = tokenizer("p60 wait5", add_special_tokens=False)["input_ids"]
    with_start = tokenizer("p60 wait5")["input_ids"]
    assert with_start == [tokenizer.bos_token_id, *words]
    bach = [tokenizer.bos_token_id, tokenizer.composer_token_id("bach")]
    for ids in (words, with_start, [*bach, *words]):
        seen = []

        def record(input_ids, scores, seen=seen):
            seen.append(input_ids[0].tolist())
            return scores

        continue_ids(tiny_model, tokenizer, ids, max_new_tokens=3, seed=0, composer="bach", logits_processor=[record])
        assert seen[0] == [*bach, *words]  # what the model read first
