"""Key guidance and the onset grid: a continuation that keeps its prompt's key and rhythm when asked to."""

from __future__ import annotations

import numpy as np
import pytest

from maia_hf.codec import NoteArray, Piece, TimeSignature
from maia_hf.errors import MaiaInputError
from maia_hf.generation import continue_piece, prompt_grid, read_prompt
from maia_hf.generation.guidance import check_guidance
from maia_hf.resources import LACRIMOSA_PROMPT

C_MAJOR = {0, 2, 4, 5, 7, 9, 11}


def _c_major_prompt() -> Piece:
    """Two bars of 12/8 in C major, every onset on an eighth note."""
    pitches = [60, 64, 67, 72, 71, 69, 67, 65, 64, 62, 60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60, 65, 62, 60]
    starts = list(range(0, 144, 6))
    notes = NoteArray.from_lists(pitches, starts, [s + 6 for s in starts])
    return Piece(notes, time_signatures=[TimeSignature(0, 12, 8)])


def _onset_phases(result, grid: int) -> np.ndarray:
    return (result.continuation.notes.start - result.prompt_end) % grid


def test_the_lacrimosa_keeps_eighth_notes_and_a_free_prompt_keeps_no_grid(tokenizer):
    assert prompt_grid(read_prompt(LACRIMOSA_PROMPT, tokenizer)) == 6
    rng = np.random.default_rng(0)
    starts = np.sort(rng.choice(500, size=40, replace=False))
    assert prompt_grid(Piece(NoteArray.from_lists([60] * 40, starts, starts + 1))) is None


def test_grid_puts_every_onset_on_it_where_the_model_alone_does_not(tokenizer, tiny_model):
    prompt = _c_major_prompt()
    free, gridded = (
        continue_piece(tiny_model, tokenizer, prompt, bars=4, seed=seed, progress=False, grid=grid)[0]
        for seed, grid in ((0, None), (0, "auto"))
    )
    assert gridded.grid_steps == 6 and free.grid_steps is None
    assert len(gridded.continuation.notes) > 20 and not _onset_phases(gridded, 6).any()
    assert _onset_phases(free, 6).mean() > 0  # the random model writes off the grid when let
    assert gridded.piece.notes.end.max() <= gridded.prompt_end + 4 * 72  # still ends at the bar line
    assert gridded.stats == {"ignored_note_offs": 0, "closed_at_end": 0, "restruck": 0}


def test_a_given_grid_holds_over_a_sliding_window(tokenizer, tiny_model):
    # The tiny model has 96 positions: 300 tokens slide the window several times.
    (result,) = continue_piece(tiny_model, tokenizer, _c_major_prompt(), max_new_tokens=300, seed=3, progress=False,
                               grid=12)  # fmt: skip
    assert result.tokens > 96 and not _onset_phases(result, 12).any()


def test_key_guidance_keeps_the_prompts_pitch_classes(tokenizer, tiny_model):
    prompt = _c_major_prompt()
    shares = []
    for strength in (0.0, 3.0):
        (result,) = continue_piece(tiny_model, tokenizer, prompt, bars=4, seed=1, progress=False,
                                   key_guidance=strength)  # fmt: skip
        pitch_classes = result.continuation.notes.pitch % 12
        shares.append(np.isin(pitch_classes, list(C_MAJOR)).mean())
        assert result.key_guidance == strength
    assert shares[0] < 0.8 and shares[1] > 0.95  # the random model alone wanders over all twelve


@pytest.mark.parametrize("balance", [0.0, 1.0])
def test_balance_brings_the_drawn_pitch_classes_toward_the_prompts(tokenizer, balance):
    """A model that keeps choosing C, a prompt that is 40 % C: the plain lean still draws C nine times in ten;
    with the balance (the default) the note-ons in view push back, and C's share comes down toward 40 %."""
    import torch

    from maia_hf.generation import KeyProfile, PitchClassGuidance

    pitches = [60, 60, 64, 67, 72, 64, 67, 60, 64, 67]
    prompt = NoteArray.from_lists(pitches, list(range(0, 60, 6)), list(range(6, 66, 6)))
    profile = KeyProfile.of(prompt)
    assert round(float(profile.onsets[0]), 2) == 0.4
    on = tokenizer.layout.on
    pitches = [on + 60 - tokenizer.layout.pitch_min + k for k in (0, 4, 7)]  # C, E, G
    logits = torch.full((1, len(tokenizer)), -float("inf"))
    logits[0, pitches] = torch.tensor([3.0, 0.0, 0.0])  # the model: C twenty times as likely as E or G

    def share_of_c(lean) -> float:
        generator, ids = torch.Generator().manual_seed(0), []
        for _ in range(400):
            window = torch.tensor([ids[-200:]], dtype=torch.long)
            p = lean(window, logits.clone()).softmax(-1)[0]
            ids.append(int(torch.multinomial(p, 1, generator=generator)))
        return ids[100:].count(pitches[0]) / 300

    plain = share_of_c(PitchClassGuidance(tokenizer, profile, 1.0, balance=0.0))
    shared = share_of_c(PitchClassGuidance(tokenizer, profile, 1.0, balance=balance))
    assert plain > 0.85
    if balance:
        assert shared < plain - 0.1 and abs(shared - 0.4) < abs(plain - 0.4)
    else:
        assert shared == plain


def test_score_stays_the_unguided_models(tokenizer, tiny_model):
    import torch

    from maia_hf.generation import prompt_ids

    notes = _c_major_prompt().notes
    prompt = Piece(notes.take(notes.start < 24), time_signatures=[TimeSignature(0, 12, 8)])
    (guided,) = continue_piece(tiny_model, tokenizer, prompt, max_new_tokens=40, seed=2, progress=False,
                               key_guidance=5.0)  # fmt: skip
    # The same tokens scored by the model alone, in one pass (they fit its 96 positions). The budget made
    # the constraints write <end>, which the score counts and Continuation.ids leaves out.
    history = prompt_ids(tokenizer, prompt, None, end_step=guided.prompt_end)
    new = [i for i in guided.ids if i != tokenizer.pad_token_id] + [tokenizer.eos_token_id]
    ids = torch.tensor([history + new])
    assert ids.shape[1] <= 96 and len(new) > 10
    with torch.no_grad():
        logp = tiny_model(ids).logits.log_softmax(-1)
    drawn = logp[0, len(history) - 1 : -1].gather(1, ids[0, len(history) :, None]).squeeze(1)
    assert guided.score == pytest.approx(float(drawn.mean()), abs=1e-5)


@pytest.mark.parametrize(
    ("grid", "key", "message"),
    [
        (5, 0.0, "grid must be 'auto', 'off' or a number of steps that divides 48"),
        ("sometimes", 0.0, "grid must be 'auto', 'off'"),
        (None, -1.0, "key_guidance must be a number from 0"),
        (None, float("nan"), "key_guidance must be a number from 0"),
    ],
)
def test_bad_guidance_values_are_refused(grid, key, message):
    with pytest.raises(MaiaInputError, match=message):
        check_guidance(grid, key)


def test_key_guidance_needs_a_prompt(tokenizer, tiny_model):
    with pytest.raises(MaiaInputError, match="leans toward the prompt's pitch classes, and there is no prompt"):
        continue_piece(tiny_model, tokenizer, None, max_new_tokens=10, key_guidance=1.0, progress=False)


def test_infilling_keeps_the_grid_and_key_of_the_music_around_the_gap(tokenizer, tiny_model):
    from maia_hf.generation import infill_piece

    prompt = _c_major_prompt()  # 2 bars of 12/8 on eighths
    notes = prompt.notes
    later = NoteArray(notes.pitch, notes.start + 288, notes.end + 288, notes.velocity)
    piece = Piece(NoteArray.concatenate([notes, later]).sorted(), time_signatures=[TimeSignature(0, 12, 8)])
    kept = []
    for grid, key in ((None, 0.0), ("auto", 3.0)):
        fills = infill_piece(tiny_model, tokenizer, piece, 3, 4, seed=4, grid=grid, key_guidance=key,
                             num_return_sequences=6)  # fmt: skip
        middle = NoteArray.concatenate([f.middle.notes for f in fills])
        assert len(middle) > 20
        kept.append((np.mean((middle.start - 144) % 6 == 0), np.isin(middle.pitch % 12, list(C_MAJOR)).mean()))
    assert kept[1][0] == 1.0 and kept[1][1] > 0.95  # every onset on the eighths, the pitches in C major
    assert kept[0][0] < 0.9 and kept[0][1] < 0.8  # what the random model writes when let
