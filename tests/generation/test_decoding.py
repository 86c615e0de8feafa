"""The decoding path: the lean loop draws generate()'s tokens; the lean decoder gives the model's logits."""

from __future__ import annotations

import pytest
import torch
from helpers import TINY_GPT
from transformers import LogitsProcessor

from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaLstmConfig, MaiaLstmForCausalLM
from maia_hf.generation import NotewiseConstraintProcessor, prompt_ids, read_prompt, sample
from maia_hf.generation.decoding import (
    GenerationInterrupted,
    LeanGPT2Decoder,
    left_padded,
    restruck_window,
    sample_with_sliding_window,
)
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


def _unmatched_offs_and_open_notes(layout, ids):
    """Note-offs without an onset before them in ``ids``, and the pitches still sounding at the end."""
    sounding, unmatched = set(), 0
    for token in ids:
        if layout.is_note_on(token):
            sounding.add(token - layout.on)
        elif layout.is_note_off(token):
            unmatched += token - layout.off not in sounding
            sounding.discard(token - layout.off)
    return unmatched, sounding


def test_restruck_window_shows_every_sounding_note_its_onset(tokenizer):
    """Cut a real piece's words anywhere: the window's note-offs all follow their onsets, the notes sounding
    at its end are the piece's, and the music after the cut is the piece's, word for word."""
    layout = tokenizer.layout
    words = prompt_ids(tokenizer, read_prompt(LACRIMOSA_PROMPT, tokenizer), None)[2:]
    whole_unmatched, whole_open = _unmatched_offs_and_open_notes(layout, words)
    assert whole_unmatched == 0
    cut_through_notes = 0
    for room in range(40, len(words), 37):
        window = restruck_window(layout, words, room)
        assert len(window) <= room
        unmatched, still = _unmatched_offs_and_open_notes(layout, window)
        assert unmatched == 0 and still == whole_open
        first_wait = next(i for i, t in enumerate(window) if layout.is_wait(t))
        assert all(layout.is_note_on(t) for t in window[:first_wait])  # the re-struck notes, then the music
        assert window[first_wait:] == words[len(words) - len(window) + first_wait :]
        raw = words[len(words) - room :]
        cut_through_notes += _unmatched_offs_and_open_notes(layout, raw)[0] > 0
    assert cut_through_notes > 3  # a plain cut would have hidden onsets: the test cuts through held notes
    assert restruck_window(layout, words, len(words)) == words


@pytest.mark.parametrize("attention", [{"attn_implementation": "sdpa"},
                                       {"attn_implementation": "maia_sparse_fixed", "sparse_block": 8,
                                        "sparse_summary": 2}], ids=["dense", "fixed"])  # fmt: skip
def test_left_padded_rows_decode_as_if_alone(tokenizer, attention):
    """Rows of different lengths in one batch (a re-struck window): each row's logits, prefill and steps, are
    those of the row decoded alone, in the lean decoder and in the model's own forward."""
    torch.manual_seed(0)
    config = MaiaConfig(vocab_size=len(tokenizer), **{**TINY_GPT, "n_positions": 64, **attention})
    model = MaiaForCausalLM(config).eval()
    rows = [torch.randint(4, 200, (30,)).tolist(), torch.randint(4, 200, (21,)).tolist()]
    context, mask = left_padded(rows, tokenizer.pad_token_id)
    assert mask is not None and mask.sum(1).tolist() == [30, 21]
    follow = torch.randint(4, 200, (2, 8))
    with torch.inference_mode():
        lean = LeanGPT2Decoder(model, batch=2, total_length=38)
        steps = [lean.prefill(context, mask)] + [lean.step(follow[:, t]) for t in range(7)]
        got = torch.stack(steps, dim=1)
        for r, row in enumerate(rows):
            alone = model(input_ids=torch.tensor([row + follow[r, :7].tolist()])).logits[0, len(row) - 1 :]
            torch.testing.assert_close(got[r], alone, rtol=1e-5, atol=1e-5)
    # The loop itself, greedy: the same tokens as each row sampled alone, lean or not.
    special = {"do_sample": False, "top_k": None, "eos_token_id": None, "pad_token_id": 0}
    batched = sample(model, context, 10, attention_mask=mask, **special)
    model.train()  # the lean decoder does not apply: the model's forward with the mask and positions
    plain = sample(model, context, 10, attention_mask=mask, **special)
    model.eval()
    for r, row in enumerate(rows):
        alone = sample(model, torch.tensor([row]), 10, **special)[0, len(row) :].tolist()
        assert batched[r, -10:].tolist() == alone == plain[r, -10:].tolist()


@pytest.mark.parametrize("summary", [3, 8], ids=["summary-3-of-8", "summary-whole-block"])
def test_compact_keys_give_the_models_own_logits(tokenizer, summary):
    """The fixed pattern's compact buffers (each row keeps the keys later queries may see): prefills that
    end on a block boundary and inside one, rows at different positions, every block boundary crossed."""
    torch.manual_seed(1)
    attention = {"attn_implementation": "maia_sparse_fixed", "sparse_block": 8, "sparse_summary": summary}
    model = MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **{**TINY_GPT, "n_positions": 64, **attention}))
    model.eval()
    rows = [torch.randint(4, 200, (n,)).tolist() for n in (16, 13, 24)]
    follow = torch.randint(4, 200, (3, 21))
    with torch.inference_mode():
        for batch in (rows, [rows[0]] * 2):  # padded rows; rows of one length (no pads)
            context, mask = left_padded(batch, tokenizer.pad_token_id)
            lean = LeanGPT2Decoder(model, batch=len(batch), total_length=context.shape[1] + 20)
            assert lean.compact
            steps = [lean.prefill(context, mask)] + [lean.step(follow[: len(batch), t]) for t in range(20)]
            got = torch.stack(steps, dim=1)
            for r, row in enumerate(batch):
                ids = torch.tensor([row + follow[r, :20].tolist()])
                torch.testing.assert_close(got[r], model(input_ids=ids).logits[0, len(row) - 1 :], rtol=1e-5, atol=1e-5)


def test_sliding_window_never_hides_a_sounding_notes_onset(tokenizer, tiny_model):
    """Over 400 tokens in 96 positions, every chunk's window shows the onset of each note it may end; the
    candidates of one batch get windows of their own."""
    layout = tokenizer.layout
    windows = []
    forward = tiny_model.forward

    def spy(*args, **kwargs):
        if kwargs["input_ids"].shape[1] > 1:
            windows.extend(kwargs["input_ids"].tolist())
        return forward(*args, **kwargs)

    history = prompt_ids(tokenizer, read_prompt(LACRIMOSA_PROMPT, tokenizer, prompt_bars=2), "mozart")
    tiny_model.forward = spy
    try:
        torch.manual_seed(5)
        rows = sample_with_sliding_window(
            tiny_model, history, 400, NotewiseConstraintProcessor(tokenizer, None, max_note_steps=96),
            num_sequences=3, layout=layout, top_k=5, eos_token_id=None, pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
    finally:
        del tiny_model.forward
    assert len(rows) == 3 and all(len(row) == 400 for row in rows)
    assert len(windows) > 3 * 5
    for window in windows:
        assert window[:2] == history[:2] and len(window) <= 96
        assert _unmatched_offs_and_open_notes(layout, window[2:])[0] == 0
    for row in rows:  # the piece itself is whole: every note-off ends a note that sounds
        assert _unmatched_offs_and_open_notes(layout, history[2:] + row)[0] == 0


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


class _EndRowAt(LogitsProcessor):
    """Force ``<end>`` on ``row`` at the ``n``-th call (a candidate of best-of-N that finishes early)."""

    def __init__(self, eos: int, row: int, n: int):
        self.eos, self.row, self.n, self.calls = eos, row, n, 0

    def __call__(self, input_ids, scores):
        self.calls += 1
        if self.calls == self.n:
            scores = scores.clone()
            scores[self.row] = float("-inf")
            scores[self.row, self.eos] = 0.0
        return scores


def test_a_finished_row_leaves_the_batch(tokenizer, tiny_model, monkeypatch):
    """Best-of-N: a candidate that has written ``<end>`` is no longer run through the model (the next
    chunk's prefill included), and the other rows draw what they drew when every row was computed."""
    history = prompt_ids(tokenizer, None, "bach")
    special = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    computed = []  # rows run through the lean decoder, per call
    prefill, step = LeanGPT2Decoder.prefill, LeanGPT2Decoder.step
    monkeypatch.setattr(
        LeanGPT2Decoder, "prefill", lambda self, ids, mask=None: computed.append(len(ids)) or prefill(self, ids, mask)
    )
    monkeypatch.setattr(
        LeanGPT2Decoder, "step", lambda self, tokens: computed.append(len(tokens)) or step(self, tokens)
    )

    def run():
        torch.manual_seed(5)
        return sample_with_sliding_window(
            tiny_model, history, 150, NotewiseConstraintProcessor(tokenizer, 400),
            logits_processor=[_EndRowAt(tokenizer.eos_token_id, row=1, n=20)], num_sequences=3, **special,
        )  # fmt: skip

    rows = run()
    assert len(rows[1]) == 20 and rows[1][-1] == tokenizer.eos_token_id
    assert [len(row) for row in (rows[0], rows[2])] == [150, 150]  # 96 positions: the window slid
    assert computed[:20] == [3] * 20 and set(computed[20:]) == {2}  # the next chunks' prefills too
    computed.clear()
    monkeypatch.setattr(LeanGPT2Decoder, "applies", classmethod(lambda cls, model, total: False))
    assert run() == rows and not computed  # the model's own forward on every row: the same draws
