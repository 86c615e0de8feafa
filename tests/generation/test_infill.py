"""Infilling: the middle fits the gap exactly and everything outside it is kept, note for note."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TINY_GPT

from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaInputError, MaiaTokenizer
from maia_hf.codec import NoteArray, Piece, TimeSignature
from maia_hf.generation import bar_span, infill_between, infill_piece


def _random_piece(rng, n_bars: int, bar: int, ts: list[TimeSignature]) -> Piece:
    n = int(rng.integers(5, 40))
    start = rng.integers(0, n_bars * bar - 1, n)
    end = np.minimum(start + rng.integers(1, 3 * bar, n), n_bars * bar)
    pitch = rng.integers(40, 90, n)
    notes, _ = MaiaTokenizer().codec.canonicalize(NoteArray.from_lists(pitch, start, end))
    return Piece(notes, time_signatures=ts)


def _outside(notes: NoteArray, start: int, end: int) -> set:
    """The notes (or the parts of notes) outside the gap, as the splice must keep them."""
    kept = set()
    for p, s, e in notes.as_tuples():
        if s < start:
            kept.add((p, s, min(e, start)))
        if e > end:
            kept.add((p, max(s, end), e))
    return kept


@pytest.mark.parametrize("positions", [48, 512])  # 48: prefix, suffix and middle do not fit one window
def test_random_logits_keep_the_outside_and_fill_exactly_the_gap(tokenizer, positions):
    torch.manual_seed(0)
    model = MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **{**TINY_GPT, "n_positions": positions})).eval()
    rng = np.random.default_rng(1)
    layout = tokenizer.layout
    filled = 0
    for trial in range(12):
        ts = [TimeSignature(0, 3, 4)] if trial % 2 else [TimeSignature(0, 12, 8)]
        bar = 36 if trial % 2 else 72
        piece = _random_piece(rng, 8, bar, ts)
        first = int(rng.integers(1, 7))
        last = int(rng.integers(first, 8))
        if last > len(piece.bar_lines(12, until=int(piece.notes.end.max()))) - 1:
            continue
        (result,) = infill_piece(model, tokenizer, piece, first, last, seed=trial, top_k=0, candidates=2)
        start, end = (first - 1) * bar, last * bar
        assert (result.gap_start, result.gap_end) == (start, end)
        outside = _outside(result.piece.notes, start, end)
        assert outside == _outside(piece.notes, start, end)
        middle = result.middle.notes
        assert len(middle) == 0 or (middle.start.min() >= start and middle.end.max() <= end)
        new = [i for i in result.ids if i != tokenizer.pad_token_id]
        if new[-1] == tokenizer.eos_token_id:  # ended (not cut short by the token budget): exactly the gap
            assert int(layout.wait_steps(np.array(new)).sum()) == end - start
            filled += 1
    assert filled >= 6


def test_a_bridge_joins_two_passages_with_exactly_the_bars_asked(tokenizer, tiny_model):
    before = Piece(NoteArray.from_lists([60, 64], [0, 24], [24, 48]))
    after = Piece(NoteArray.from_lists([67], [6], [30]))  # 6 steps into its bar: it keeps that place
    (result,) = infill_between(tiny_model, tokenizer, before, after, 2, seed=0)
    assert (result.gap_start, result.gap_end, result.bars) == (48, 144, (2, 3))
    notes = result.piece.notes.as_tuples()
    assert (60, 0, 24) in notes and (64, 24, 48) in notes and (67, 150, 174) in notes
    assert all(s >= 48 and e <= 144 for _, s, e in result.middle.notes.as_tuples())


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [(3, 2, "empty gap"), (0, 2, "counted from 1"), (4, 9, r"past the piece's last bar \(4\)"), (5, 5, "past")],
)
def test_bars_outside_the_piece_or_an_empty_range_are_refused(first, last, message):
    piece = Piece(NoteArray.from_lists([60], [0], [192]))  # 4 bars of 4/4
    with pytest.raises(MaiaInputError, match=message):
        bar_span(piece, first, last)


def test_a_model_without_fim_tokens_is_refused_with_what_to_use(tokenizer):
    old = MaiaTokenizer()
    vocab = {t: i for t, i in old.get_vocab().items() if not t.startswith("<fim_")}
    old_tokenizer = MaiaTokenizer(vocab=vocab)
    assert not old_tokenizer.layout.has_fim
    model = MaiaForCausalLM(MaiaConfig(vocab_size=len(old_tokenizer), **TINY_GPT)).eval()
    piece = Piece(NoteArray.from_lists([60], [0], [192]))
    with pytest.raises(MaiaInputError, match="not trained to infill"):
        infill_piece(model, old_tokenizer, piece, 2, 3)


@pytest.mark.parametrize("order", ["psm", "spm"])
def test_the_model_is_shown_the_passages_in_the_order_it_was_trained_in(tokenizer, order):
    torch.manual_seed(0)
    model = MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **{**TINY_GPT, "n_positions": 512})).eval()
    model.config.fim_order = order
    seen = []
    model.register_forward_pre_hook(lambda _, args, kwargs: seen.append(kwargs["input_ids"][0].tolist()),
                                    with_kwargs=True)  # fmt: skip
    piece = Piece(NoteArray.from_lists([60, 62, 64, 65], [0, 48, 96, 144], [24, 72, 120, 168]))  # 4 bars of 4/4
    (result,) = infill_piece(model, tokenizer, piece, 2, 3, seed=0)
    lay = tokenizer.layout
    first = seen[0]
    sentinels = [t for t in first if t in (lay.fim_prefix, lay.fim_suffix, lay.fim_middle)]
    assert sentinels == ([lay.fim_prefix, lay.fim_suffix, lay.fim_middle] if order == "psm"
                         else [lay.fim_suffix, lay.fim_prefix, lay.fim_middle])  # fmt: skip
    prefix = first[first.index(lay.fim_prefix) + 1 : first.index(lay.fim_middle if order == "spm" else lay.fim_suffix)]
    assert tokenizer.convert_ids_to_tokens(prefix)[:3] == ["p60", "wait24", "endp60"]
    assert [n for n in result.piece.notes.as_tuples() if n[1] < 48 or n[1] >= 144] == [(60, 0, 24), (65, 144, 168)]
