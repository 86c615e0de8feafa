"""The fill-in-the-middle format (docs/encoding.md §11) and the training transform."""

from __future__ import annotations

import numpy as np
import pytest

from maia_hf import MaiaInputError, MaiaTokenizer
from maia_hf.codec import NoteArray
from maia_hf.data import FimTransform, fim_ids, split_at_gap


@pytest.fixture(scope="module")
def tok():
    return MaiaTokenizer()


def _span(tok, ids, sentinel):
    """The words after ``sentinel``, up to the next sentinel (or the end)."""
    lay = tok.layout
    first = ids.index(sentinel) + 1
    last = next((i for i in range(first, len(ids)) if ids[i] in (lay.fim_prefix, lay.fim_suffix, lay.fim_middle)),
                len(ids))  # fmt: skip
    return ids[first:last]


def _passages(tok, ids):
    """The three passages of a fill-in-the-middle sequence (either order), each decoded on its own."""
    lay = tok.layout
    decode = lambda part: tok.codec.decode(lay.codec_indices(part))  # noqa: E731
    return tuple(decode(_span(tok, ids, s)) for s in (lay.fim_prefix, lay.fim_suffix, lay.fim_middle))


@pytest.mark.parametrize("order", ["psm", "spm"])
def test_each_passage_is_self_contained_and_the_cut_notes_are_struck_again(tok, order):
    notes = NoteArray.from_lists([60, 62, 67, 48], [0, 40, 100, 10], [60, 50, 110, 150])
    ids = fim_ids(tok, split_at_gap(notes, 48, 96), "bach", order=order)
    first = tok.layout.fim_prefix if order == "psm" else tok.layout.fim_suffix
    assert ids[:3] == [tok.bos_token_id, tok.composer_token_id("bach"), first]
    assert ids[-1] == tok.eos_token_id
    if order == "spm":  # the middle follows the prefix's last word straight after <fim_middle>
        assert ids.index(tok.layout.fim_suffix) < ids.index(tok.layout.fim_prefix) < ids.index(tok.layout.fim_middle)
    prefix, suffix, middle = _passages(tok, ids)
    for passage in (prefix, suffix, middle):  # no endp of a note the passage never started, none left open
        assert passage.ignored_note_offs == 0 and passage.closed_at_end == 0
    assert prefix.total_steps == 48  # waits up to the gap's start
    assert middle.total_steps == 48  # the gap, exactly
    assert middle.notes.as_tuples() == [(48, 0, 48), (60, 0, 12), (62, 0, 2)]
    # The suffix is written from the gap's start: its leading waits are the gap (and any rest after it).
    assert suffix.notes.as_tuples() == [(48, 48, 102), (67, 52, 62)]


def test_splitting_and_splicing_give_back_every_note_outside_the_gap():
    rng = np.random.default_rng(0)
    for _ in range(50):
        start = rng.integers(0, 400, 30)
        notes = NoteArray.from_lists(rng.integers(21, 109, 30), start, start + rng.integers(1, 100, 30))
        g0 = int(rng.integers(0, 300))
        g1 = g0 + int(rng.integers(1, 150))
        parts = split_at_gap(notes, g0, g1)
        assert (parts.prefix.end <= g0).all() and (parts.suffix.start >= g1 - g0).all()
        assert (parts.middle.start >= 0).all() and (parts.middle.end <= g1 - g0).all()
        total = lambda n: int((n.end - n.start).sum())  # noqa: E731
        assert total(parts.prefix) + total(parts.middle) + total(parts.suffix) == total(notes)


def test_the_transform_is_a_function_of_seed_and_key_at_the_rate_asked(tok):
    window = tok.encode_text(" ".join(f"p{50 + i % 30} wait12 endp{50 + i % 30}" for i in range(60)), composer="bach")
    fim = FimTransform(tok, rate=0.5, max_bars=4, seed=3)
    outs = [fim(window, key=k) for k in range(400)]
    assert outs == [fim(window, key=k) for k in range(400)]
    assert outs != [FimTransform(tok, rate=0.5, seed=4)(window, key=k) for k in range(400)]
    share = np.mean([tok.layout.fim_middle in o for o in outs])
    assert 0.42 < share < 0.58
    for out in outs:
        if tok.layout.fim_middle in out:
            _, _, middle = _passages(tok, out)
            assert middle.total_steps in (48, 96, 144, 192)  # 1 to 4 bars of 48 steps


@pytest.mark.parametrize("order", ["psm", "spm"])
def test_a_long_window_loses_its_prefix_start_never_the_middle(tok, order):
    lay = tok.layout
    window = tok.encode_text(" ".join(f"p{40 + i % 40} wait6 endp{40 + i % 40}" for i in range(200)))[:300]
    fim = FimTransform(tok, rate=1.0, max_bars=2, seq_len=200, seed=0, order=order)
    cut_suffix = 0
    for key in range(20):
        out = fim(window, key=key)
        assert len(out) <= 200
        full = FimTransform(tok, rate=1.0, max_bars=2, seq_len=10_000, seed=0, order=order)(window, key=key)
        middle = full[full.index(lay.fim_middle) :]
        assert out[-len(middle) :] == middle
        prefix, whole = _span(tok, out, lay.fim_prefix), _span(tok, full, lay.fim_prefix)
        assert prefix == whole[len(whole) - len(prefix) :]  # the prefix keeps its end, next to the gap
        suffix, whole = _span(tok, out, lay.fim_suffix), _span(tok, full, lay.fim_suffix)
        assert suffix == whole[: len(suffix)]  # the suffix keeps its start
        cut_suffix += len(suffix) < len(whole)
    assert cut_suffix  # some windows are long enough to cut into the suffix too


def test_a_model_records_the_order_it_infills_in(tok):
    from types import SimpleNamespace

    from maia_hf.data.fim import fim_order_of

    assert fim_order_of(SimpleNamespace(config=SimpleNamespace())) == "psm"  # trained before the orders existed
    assert fim_order_of(SimpleNamespace(config=SimpleNamespace(fim_order="spm"))) == "spm"
    with pytest.raises(MaiaInputError, match="fim_order must be one of psm, spm, got 'mps'"):
        FimTransform(tok, rate=0.5, order="mps")


@pytest.mark.parametrize(("rate", "bars", "message"), [(1.5, 4, "between 0 and 1"), (0.5, 0, "at least 1 bar")])
def test_bad_settings_name_the_key(tok, rate, bars, message):
    with pytest.raises(MaiaInputError, match=message):
        FimTransform(tok, rate=rate, max_bars=bars)


def test_an_old_vocabulary_gets_the_tokens_after_every_old_id():
    vocab = {t: i for t, i in MaiaTokenizer().get_vocab().items() if not t.startswith("<fim_")}
    old = MaiaTokenizer(vocab=vocab)
    with pytest.raises(MaiaInputError, match="no fill-in-the-middle tokens"):
        fim_ids(old, split_at_gap(NoteArray.from_lists([60], [0], [12]), 0, 48))
    assert old.add_fim_tokens() == 3 and old.add_fim_tokens() == 0
    assert old.get_vocab() == MaiaTokenizer().get_vocab()
