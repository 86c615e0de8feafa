"""The evaluation corpus: windows stitched back into sequences, references, the training set in one key, excerpts."""

from __future__ import annotations

import pytest


def test_read_sequences_stitches_windows_back(corpus, tokenizer):
    from datasets import load_from_disk

    from maia_hf.evaluation.corpus import read_sequences

    train = load_from_disk(str(corpus))["train"]
    sequences = read_sequences(train)
    assert {k for k in sequences} == set(zip(train["piece_id"], train["transpose"], strict=True))
    for (piece_id, key), (composer, ids) in sequences.items():
        windows = [r for r in train if r["piece_id"] == piece_id and r["transpose"] == key]
        assert composer == "mozart" and len(ids) == windows[0]["n_tokens"]
        for row in windows:  # every window is the sequence at its start
            assert ids[row["window_start"] : row["window_start"] + len(row["input_ids"])].tolist() == row["input_ids"]


def test_the_evaluation_corpus(corpus, tokenizer):
    from datasets import load_from_disk

    from maia_hf import MaiaTokenizer
    from maia_hf.errors import MaiaInputError
    from maia_hf.evaluation.corpus import load_evaluation_corpus

    c = load_evaluation_corpus(corpus, tokenizer, pieces=6, bars=2, max_reference_words=1, seed=0)
    assert len(c.references) == 1  # the word budget is spent by the first sequence
    assert len(c.memory) == 7  # every training piece once, in its original key
    assert (c.held_out_split, c.nll_split_name) == ("test", "validation")
    test_pieces = set(load_from_disk(str(corpus))["test"]["piece_id"])
    assert len(c.excerpts) == 6 and {s.name.split()[0] for s in c.excerpts} == test_pieces  # each piece first
    for s in c.excerpts:
        assert s.length == 96 and s.notes.start.min() >= 0 and s.notes.end.max() <= 96
        assert tokenizer.codec.decode(s.words).notes.as_tuples() == s.notes.as_tuples()
    everything = load_evaluation_corpus(corpus, tokenizer, pieces=1, bars=2)
    assert len(everything.references) == 14  # 7 pieces in 2 keys
    with pytest.raises(MaiaInputError, match="another vocabulary"):
        load_evaluation_corpus(corpus, MaiaTokenizer(composers=["bach"]), pieces=1, bars=2)


def test_excerpts_with_prompts_keep_the_bars_before_them(corpus, tokenizer):
    from maia_hf.evaluation.corpus import cut_excerpt, load_evaluation_corpus, read_sequences

    plain = load_evaluation_corpus(corpus, tokenizer, pieces=6, bars=2, max_reference_words=1, seed=3)
    c = load_evaluation_corpus(corpus, tokenizer, pieces=6, bars=2, max_reference_words=1, seed=3, prompt_bars=2)
    assert all(s.prompt is None for s in plain.excerpts)
    from datasets import load_from_disk

    held_out = read_sequences(load_from_disk(str(corpus))["test"], lambda f: f["transpose"] == 0)
    decode = tokenizer.codec.decode
    whole = {p: decode(tokenizer.layout.codec_indices(ids)).notes for (p, _), (_, ids) in held_out.items()}
    for s in c.excerpts:
        piece, _, bars, after, _, before = s.name.split()  # "<piece> bars 5-6 after bars 3-4"
        assert after == "after", s.name
        start, begin = ((int(span.split("-")[0]) - 1) * 48 for span in (bars, before))
        assert start - begin <= 2 * 48 and start >= 48
        # The prompt is the piece's music just before the excerpt, cut at the excerpt's start, sounding to its end.
        assert s.prompt.as_tuples() == cut_excerpt(whole[piece], begin, start - begin).as_tuples()
        assert start - 48 < begin + int(s.prompt.end.max()) <= start
        assert s.notes.as_tuples() == cut_excerpt(whole[piece], start, 96).as_tuples()


def test_a_model_with_the_fim_tokens_reads_a_corpus_built_before_them():
    """The corpus's ids mean the same with the three FIM tokens added after them; another order does not."""
    from maia_hf import MaiaTokenizer

    vocab = {t: i for t, i in MaiaTokenizer().get_vocab().items() if not t.startswith("<fim_")}
    old = MaiaTokenizer(vocab=vocab)
    assert MaiaTokenizer().extends(old) and not old.extends(MaiaTokenizer())
    assert not MaiaTokenizer().extends(MaiaTokenizer(composers=["bach"]))
