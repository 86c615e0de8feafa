"""Best-of-N: candidates decoded as one batch, scored by the unconstrained model, the likeliest kept."""

from __future__ import annotations

import pytest
import torch
from helpers import TINY_GPT

from maia_hf import MaiaConfig, MaiaForCausalLM
from maia_hf.errors import MaiaInputError
from maia_hf.generation import (
    DEFAULT_MAX_NOTE_QUARTERS,
    NotewiseConstraintProcessor,
    SequenceLogProbability,
    continue_ids,
    continue_piece,
    decoding,
    max_note_steps,
    prompt_ids,
    ranking,
    read_prompt,
)
from maia_hf.resources import LACRIMOSA_PROMPT


def special(tokenizer) -> dict:
    return {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}


def tiny_gpt(tokenizer, n_positions: int) -> MaiaForCausalLM:
    torch.manual_seed(0)
    return MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **{**TINY_GPT, "n_positions": n_positions})).eval()


@torch.no_grad()
def recomputed_mean_log_probability(model, history: list[int], new: list[int]) -> float:
    """Brute force: the model on the whole sequence, the mean log-probability of the new tokens."""
    ids = torch.tensor([history + new])
    log_probs = model(input_ids=ids).logits[0].double().log_softmax(-1)
    positions = torch.arange(len(history), ids.shape[1])
    return float(log_probs[positions - 1, ids[0, positions]].mean())


@torch.no_grad()
def recomputed_over_windows(model, chunks, rows: list[list[int]]) -> list[float]:
    """Brute force over a sliding window: each chunk's sequences (B, T) run through the model again, and each
    new token is scored in the window it was drawn in (``chunks``: (sequences, context length) per chunk)."""
    totals, counts, before = [0.0] * len(rows), [0] * len(rows), 0
    for ids, context in chunks:
        log_probs = model(input_ids=ids).logits.double().log_softmax(-1)
        for b, row in enumerate(rows):
            for j in range(context, ids.shape[1]):
                if before + j - context < len(row):  # the row's own tokens: up to its <end>, no pads
                    totals[b] += float(log_probs[b, j - 1, ids[b, j]])
                    counts[b] += 1
        before += ids.shape[1] - context
    assert counts == [len(row) for row in rows]
    return [t / c for t, c in zip(totals, counts, strict=True)]


def test_scores_are_the_unconstrained_models_mean_log_probability(tokenizer):
    """One window (128 positions): the score is the raw model's, before the constraints, temperature, top-k."""
    model = tiny_gpt(tokenizer, 128)
    history = prompt_ids(tokenizer, None, "bach")
    constraints = NotewiseConstraintProcessor(tokenizer, 120, end_step=48)
    scorer = SequenceLogProbability(**special(tokenizer))
    torch.manual_seed(0)
    rows = decoding.sample_with_sliding_window(
        model, history, 120, constraints, num_sequences=4, scorer=scorer, top_k=5, temperature=0.8,
        **special(tokenizer),
    )  # fmt: skip
    assert all(row[-1] == tokenizer.eos_token_id for row in rows) and len(history) + 120 <= 128
    assert len({len(row) for row in rows}) > 1  # the rows that end first get pads while the others go on
    expected = torch.tensor([recomputed_mean_log_probability(model, history, row) for row in rows], dtype=torch.float64)
    torch.testing.assert_close(scorer.mean_log_probability, expected, atol=1e-4, rtol=0)
    assert scorer.token_counts.tolist() == [len(row) for row in rows] == constraints.row_steps.tolist()
    assert constraints.steps == sum(len(row) for row in rows)  # a finished row is no longer counted
    scores = torch.randn(4, len(tokenizer))
    assert scorer(torch.zeros(4, 1, dtype=torch.long), scores) is scores  # it changes nothing


def test_scores_follow_the_sliding_window(tokenizer, monkeypatch):
    """64 positions and 200 new tokens: each token is scored in the window it was drawn in."""
    model = tiny_gpt(tokenizer, 64)
    chunks, sample = [], decoding.sample

    def recording_sample(model, input_ids, *args, **kwargs):
        out = sample(model, input_ids, *args, **kwargs)
        chunks.append((out.clone(), input_ids.shape[1]))
        return out

    monkeypatch.setattr(decoding, "sample", recording_sample)
    scorer = SequenceLogProbability(**special(tokenizer))
    torch.manual_seed(1)
    rows = decoding.sample_with_sliding_window(
        model, prompt_ids(tokenizer, None, "chopin"), 200, NotewiseConstraintProcessor(tokenizer, 200),
        num_sequences=2, scorer=scorer, top_k=5, **special(tokenizer),
    )  # fmt: skip
    assert len(chunks) > 3 and max(len(row) for row in rows) > 64
    expected = torch.tensor(recomputed_over_windows(model, chunks, rows), dtype=torch.float64)
    torch.testing.assert_close(scorer.mean_log_probability, expected, atol=1e-4, rtol=0)


def test_best_of_n_keeps_the_likeliest_of_n_well_formed_candidates(tokenizer, tiny_model, monkeypatch):
    batches, sample_rows = [], ranking.sample_with_sliding_window

    def recording(*args, **kwargs):
        batches.append(sample_rows(*args, **kwargs))
        return batches[-1]

    monkeypatch.setattr(ranking, "sample_with_sliding_window", recording)
    notes = []
    prompt = read_prompt(LACRIMOSA_PROMPT, tokenizer, prompt_bars=1)  # one bar of 12/8: 72 steps
    results = continue_piece(
        tiny_model, tokenizer, prompt, bars=2, candidates=4, num_return_sequences=2, seed=0, progress=False,
        on_note=lambda *note: notes.append(note),
    )  # fmt: skip
    assert len(results) == len(batches) == 2
    for result, rows in zip(results, batches, strict=True):
        assert len(rows) == 4 and len({tuple(row) for row in rows}) == 4  # four distinct candidates
        assert len(result.candidate_scores) == 4
        assert result.score == max(result.candidate_scores) == result.candidate_scores[result.chosen]
        assert result.ids + [tokenizer.eos_token_id] == rows[result.chosen]
        for row in rows:  # every candidate is well-formed and stops at the bar line two bars on
            assert row[-1] == tokenizer.eos_token_id
            decoded = tokenizer.codec.decode(tokenizer.layout.codec_indices(row[:-1]))
            assert (decoded.ignored_note_offs, decoded.closed_at_end, decoded.restruck) == (0, 0, 0)
            assert decoded.total_steps == 2 * 72
        assert result.piece.notes.end.max() <= 3 * 72 and result.steps == len(rows[result.chosen])
    assert notes == []  # which candidate is kept is known only at the end: no notes are handed over


def test_one_candidate_draws_what_generate_draws(tokenizer, tiny_model):
    """candidates=1 (the default) samples as before: generate()'s tokens for the same seed, and a score."""
    history = prompt_ids(tokenizer, None, None)
    longest = max_note_steps(DEFAULT_MAX_NOTE_QUARTERS, tokenizer.codec.config.steps_per_quarter)
    constraints = NotewiseConstraintProcessor(tokenizer, 60, 12, None, longest)
    torch.manual_seed(7)
    expected = tiny_model.generate(
        torch.tensor([history]), max_new_tokens=60, do_sample=True, top_k=5, logits_processor=[constraints],
        **special(tokenizer),
    )[0, len(history) :].tolist()  # fmt: skip
    (result,) = continue_piece(tiny_model, tokenizer, None, max_new_tokens=60, seed=7, progress=False)
    assert result.ids + [tokenizer.eos_token_id] == expected
    assert (result.interventions, result.steps) == (constraints.interventions, constraints.steps)
    assert result.candidate_scores == [result.score] and result.chosen == 0
    assert result.score == pytest.approx(recomputed_mean_log_probability(tiny_model, history, expected), abs=1e-4)


def test_continue_ids_takes_candidates(tokenizer, tiny_model):
    ids = tokenizer.convert_tokens_to_ids(["p60", "wait5"])
    first = continue_ids(tiny_model, tokenizer, ids, max_new_tokens=40, seed=0, candidates=3, num_return_sequences=2)
    again = continue_ids(tiny_model, tokenizer, ids, max_new_tokens=40, seed=0, candidates=3, num_return_sequences=2)
    assert first == again and len(first) == 2 and all(0 < len(new) <= 40 for new in first)


@pytest.mark.parametrize("candidates", [0, -2, 2.5, True], ids=str)
def test_candidates_must_be_a_whole_number_of_at_least_one(tokenizer, candidates):
    with pytest.raises(MaiaInputError, match=r"candidates must be a whole number >= 1 .*, got "):
        continue_piece(None, tokenizer, candidates=candidates)  # refused before the model is used
