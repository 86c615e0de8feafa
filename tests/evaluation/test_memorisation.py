"""Memorisation: longest matches against brute force, copied spans, and copies found in another key."""

from __future__ import annotations

import numpy as np
import pytest

from maia_hf.codec import NoteArray, NotewiseCodec
from maia_hf.evaluation.memorisation import copied_spans, longest_matches, memorisation_report


def brute_longest(query: np.ndarray, corpus: list[np.ndarray]) -> list[int]:
    out = []
    for i in range(len(query)):
        length = 0
        while i + length < len(query) and any(
            any(c[j : j + length + 1].tolist() == query[i : i + length + 1].tolist() for j in range(len(c)))
            for c in corpus
        ):
            length += 1
        out.append(length)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_longest_matches_agree_with_brute_force(seed):
    rng = np.random.default_rng(seed)
    corpus = [rng.integers(0, 3, int(rng.integers(1, 50))) for _ in range(3)]
    # Long verbatim copies (past the hash grid's steps) and random stretches.
    queries = [np.concatenate([corpus[0], rng.integers(0, 3, 4), corpus[1][::-1]]), rng.integers(0, 3, 30)]
    for query, found in zip(queries, longest_matches(queries, corpus), strict=True):
        assert found.tolist() == brute_longest(query, corpus)


def test_copied_span_is_measured_between_note_words(codec):
    words = codec.words_to_indices("p60 wait24 endp60 p62 wait24 endp62 wait48 p64 wait12 endp64")
    copy = copied_spans(words, np.array([6, 5, 4, 3, 2, 1, 0, 0, 0, 0]), codec)
    assert (copy.longest_ngram, copy.longest_span_steps, copy.span_start) == (6, 48, 0)
    assert copy.copies_bars(1) and not copy.copies_bars(2)


def test_memorisation_finds_a_transposed_copy(codec: NotewiseCodec):
    rng = np.random.default_rng(0)
    starts = np.arange(0, 4 * 48, 12)  # four bars of quarter notes
    training = NoteArray.from_lists(rng.integers(55, 80, len(starts)).tolist(), starts.tolist(), (starts + 12).tolist())
    corpus = [codec.encode(training)]
    copy = codec.encode(training, transpose=3)
    other = codec.encode(
        NoteArray.from_lists(rng.integers(40, 90, len(starts)).tolist(), starts.tolist(), (starts + 6).tolist())
    )
    copied, fresh = memorisation_report([copy, other], corpus, codec)
    assert copied.longest_ngram == len(copy) and copied.copies_bars(2)
    assert copied.longest_span_steps == 4 * 48
    assert fresh.longest_ngram < 6 and not fresh.copies_bars(2)
    # Compared in its own key only, the transposed copy shares only short chance n-grams.
    (own_key,) = memorisation_report([copy], corpus, codec, keys=[0])
    assert own_key.longest_ngram < 10 and not own_key.copies_bars(1)
