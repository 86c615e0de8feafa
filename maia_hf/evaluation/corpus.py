"""The corpus side of an evaluation: real excerpts, BLEU references and the training set, read from a built corpus.

A corpus built by :func:`maia_hf.data.build_dataset` holds overlapping windows; :func:`read_sequences`
stitches them back into whole sequences. :func:`load_evaluation_corpus` takes from it:

- the **BLEU references**: training sequences in all their keys, in random order, up to a number of words;
- the **training set in one key**: each training piece once (the key nearest its original), for the
  memorisation check, which compares generated pieces in all 12 keys;
- the **real excerpts**: excerpts of a fixed number of 4/4 bars from the held-out pieces (``test``, else
  ``validation``), at random bar lines, in their original key (the corpus keeps no time signatures); with
  ``prompt_bars``, each keeps the bars before it as the prompt a model continues in its place;
- the split whose windows the likelihood is measured on (``validation``, else ``test``).

Example:

```python
>>> from maia_hf.codec import NoteArray
>>> from maia_hf.evaluation.corpus import cut_excerpt
>>> cut_excerpt(NoteArray.from_lists([60, 62, 64], [0, 40, 50], [48, 60, 100]), 48, 48).as_tuples()
[(64, 2, 48)]

```
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..codec import NoteArray
from ..errors import MaiaInputError

__all__ = [
    "BEATS_PER_BAR",
    "EvaluationCorpus",
    "Sample",
    "cut_excerpt",
    "load_evaluation_corpus",
    "read_sequences",
    "window_table",
]

BEATS_PER_BAR = 4  # the corpus keeps no time signatures: every bar is 4/4


@dataclass
class Sample:
    """One excerpt, real or generated: its words (codec indices), notes (steps from its start) and length.

    A real excerpt may carry the music before it (``prompt``, notes cut at the excerpt's start, times from the
    prompt's start): a model evaluated on continuations continues that prompt in the excerpt's place.

    Example:

    ```python
    >>> from maia_hf.codec import NotewiseCodec
    >>> notes = NoteArray.from_lists([60, 64], [0, 12], [12, 24])
    >>> sample = Sample(NotewiseCodec().encode(notes), notes, length=48, composer="bach", name="two notes")
    >>> NotewiseCodec().indices_to_words(sample.words)
    ['p60', 'wait12', 'endp60', 'p64', 'wait12', 'endp64']

    ```
    """

    words: np.ndarray
    notes: NoteArray
    length: int
    composer: str = "unknown"
    name: str = ""
    prompt: NoteArray | None = None


@dataclass
class EvaluationCorpus:
    """What the evaluation takes from a corpus: references, the training set in one key, real excerpts."""

    references: list[np.ndarray]  # BLEU references: training sequences, all keys, as codec words
    memory: list[np.ndarray]  # training sequences in one key each, as codec words
    excerpts: list[Sample]  # real held-out excerpts
    held_out_split: str
    nll_split: object | None  # a datasets.Dataset of windows, or None
    nll_split_name: str
    info: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Reading the corpus
# --------------------------------------------------------------------------------------------


def window_table(split):
    """The split's Arrow table and its window metadata as a DataFrame (row order kept), with each window's length."""
    table = split.data.table if split._indices is None else split.flatten_indices().data.table
    frame = table.select(["piece_id", "composer", "transpose", "window_start"]).to_pandas()
    chunks = table.column("input_ids").chunks  # chunk by chunk: the column may be larger than memory
    frame["length"] = np.concatenate([c.value_lengths().to_numpy() for c in chunks]) if chunks else []
    return table, frame


def read_sequences(split, keep=None) -> dict[tuple[str, int], tuple[str, np.ndarray]]:
    """Stitch a split's windows back into whole sequences: ``(piece_id, transpose) -> (composer, ids)``.

    Args:
        split (`datasets.Dataset`): a split of a corpus from :func:`maia_hf.data.build_dataset`.
        keep (*optional*): a function ``(frame) -> boolean mask`` choosing the windows to read from their
            metadata (columns ``piece_id``, ``composer``, ``transpose``, ``window_start``); only those are read.
    """
    import pyarrow as pa

    if split is None or len(split) == 0:
        return {}
    table, frame = window_table(split)
    if keep is not None:
        frame = frame[np.asarray(keep(frame), dtype=bool)]
    frame = frame.sort_values(["piece_id", "transpose", "window_start"], kind="stable")
    ids = table.column("input_ids").take(pa.array(frame.index.to_numpy())).combine_chunks()
    values, offsets = ids.flatten().to_numpy(zero_copy_only=False), ids.offsets.to_numpy()
    sequences: dict[tuple[str, int], tuple[str, list]] = {}
    covered: dict[tuple[str, int], int] = {}
    columns = (frame["piece_id"], frame["composer"], frame["transpose"], frame["window_start"])
    for i, (piece, composer, key, start) in enumerate(zip(*columns, strict=True)):
        window = values[offsets[i] : offsets[i + 1]]
        _, parts = sequences.setdefault((piece, int(key)), (composer, []))
        done = covered.get((piece, int(key)), 0)
        parts.append(window[max(0, done - int(start)) :])
        covered[(piece, int(key))] = max(done, int(start) + len(window))
    return {k: (c, np.concatenate(parts).astype(np.int64)) for k, (c, parts) in sequences.items()}


def cut_excerpt(notes: NoteArray, start: int, length: int) -> NoteArray:
    """The notes starting in ``[start, start + length)``, cut at its end, with times from ``start``.

    >>> cut_excerpt(NoteArray.from_lists([60, 62, 64], [0, 40, 50], [48, 60, 100]), 48, 48).as_tuples()
    [(64, 2, 48)]
    """
    keep = (notes.start >= start) & (notes.start < start + length)
    n = notes.take(keep)
    return NoteArray(n.pitch, n.start - start, np.minimum(n.end, start + length) - start, n.velocity)


def load_evaluation_corpus(
    data_dir, tokenizer, pieces: int, bars: int, max_reference_words: int = 0, seed: int = 0, prompt_bars: int = 0
) -> EvaluationCorpus:
    """Read what the evaluation needs from a corpus built by :func:`maia_hf.data.build_dataset`.

    Args:
        data_dir: the corpus folder.
        tokenizer (`MaiaTokenizer`): the models' tokenizer; the corpus must have been built with the same vocabulary.
        pieces (`int`), bars (`int`): how many real excerpts, and how long (4/4 bars).
        max_reference_words (`int`, *optional*, defaults to 0): training sequences (all keys, in random order)
            become BLEU references until they hold this many words (0: all).
        seed (`int`, *optional*, defaults to 0): the random order of the references and the excerpts.
        prompt_bars (`int`, *optional*, defaults to 0): each excerpt starts at bar ``prompt_bars + 1`` or later
            and keeps the ``prompt_bars`` bars before it as :attr:`Sample.prompt` (fewer if the piece is shorter).

    Raises:
        MaiaInputError: the corpus is missing, has another vocabulary, or lacks training or held-out pieces.
    """
    from ..data import load_corpus

    rng = np.random.default_rng(seed)
    corpus, _, corpus_tokenizer = load_corpus(data_dir)
    # A model trained on with FIM windows has the corpus's vocabulary and three more tokens: its ids read the same.
    if corpus_tokenizer is not None and not tokenizer.extends(corpus_tokenizer):
        raise MaiaInputError(
            f"the corpus {str(data_dir)!r} was built with another vocabulary than the model's tokenizer; "
            "evaluate on a corpus built with the model's tokenizer (maia data build --tokenizer MODEL_DIR)"
        )
    train = corpus.get("train")
    if train is None or len(train) == 0:
        raise MaiaInputError(f"the corpus {str(data_dir)!r} has no training pieces to compare against")
    layout = tokenizer.layout
    lengths = _sequence_lengths(train)
    references = read_sequences(train, _rows_in(_reference_sequences(lengths, max_reference_words, rng)))
    references = [layout.codec_indices(ids) for _, ids in references.values()]
    memory = read_sequences(train, _rows_in(_one_key_per_piece(lengths)))
    held_out_name = _first_split(corpus, ("test", "validation"))
    if held_out_name is None:
        raise MaiaInputError(f"the corpus {str(data_dir)!r} has no test or validation pieces for real excerpts")
    held_out = read_sequences(corpus[held_out_name], lambda f: f["transpose"] == 0)
    nll_name = _first_split(corpus, ("validation", "test"))
    return EvaluationCorpus(
        references=references,
        memory=[layout.codec_indices(ids) for _, ids in memory.values()],
        excerpts=_real_excerpts(held_out, tokenizer, pieces, bars, rng, prompt_bars),
        held_out_split=held_out_name,
        nll_split=corpus[nll_name] if nll_name else None,
        nll_split_name=nll_name or "",
        info={
            "train_pieces": int(len({k[0] for k in lengths.index})),
            "reference_sequences": len(references),
            "reference_words": int(sum(len(words) for words in references)),
            "held_out_split": held_out_name,
            "held_out_pieces": len(held_out),
            "codec": tokenizer.codec.config.to_dict(),
        },
    )


def _first_split(corpus, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` that the corpus has and that holds windows."""
    return next((name for name in names if name in corpus and len(corpus[name])), None)


def _reference_sequences(lengths, max_words: int, rng: np.random.Generator) -> set[tuple[str, int]]:
    """(piece_id, transpose) sequences in random order until they hold ``max_words`` tokens (0: all)."""
    budget, chosen = max_words or math.inf, set()
    for i in rng.permutation(len(lengths)):
        if budget <= 0:
            break
        chosen.add(lengths.index[i])
        budget -= int(lengths.iloc[i])
    return chosen


def _rows_in(sequences: set):
    """A ``keep`` function for :func:`read_sequences`: the windows of these (piece_id, transpose) sequences."""
    return lambda f: [k in sequences for k in zip(f["piece_id"], f["transpose"], strict=True)]


def _sequence_lengths(split):
    """Tokens of each (piece_id, transpose) sequence of a split (a pandas Series)."""
    frame = split.select_columns(["piece_id", "transpose", "n_tokens"]).to_pandas()
    return frame.groupby(["piece_id", "transpose"], sort=True)["n_tokens"].first()


def _one_key_per_piece(lengths) -> set[tuple[str, int]]:
    """For each piece, the sequence in the key nearest its original one."""
    keys: dict[str, int] = {}
    for piece, key in lengths.index:
        if piece not in keys or abs(key) < abs(keys[piece]):
            keys[piece] = key
    return set(keys.items())


def _real_excerpts(
    held_out: dict, tokenizer, pieces: int, bars: int, rng: np.random.Generator, prompt_bars: int = 0
) -> list[Sample]:
    """``pieces`` excerpts of ``bars`` bars from held-out pieces, at random bar lines (each piece once first).

    With ``prompt_bars``, an excerpt begins no earlier than that many bars into its piece, and the bars before
    it become its prompt. If the prompt's last bars are silent, the excerpt begins after its last sounding bar
    (where a continuation of that prompt begins).
    """
    codec, layout = tokenizer.codec, tokenizer.layout
    bar = BEATS_PER_BAR * codec.config.steps_per_quarter
    length = bars * bar
    decoded_pieces = []
    for (piece_id, _), (composer, ids) in sorted(held_out.items()):
        decoded = codec.decode(layout.codec_indices(ids))
        if len(decoded.notes):
            decoded_pieces.append((piece_id, composer, decoded.notes, max(1, decoded.total_steps // bar)))
    if not decoded_pieces:
        raise MaiaInputError("the held-out pieces of the corpus hold no notes")
    excerpts, order = [], rng.permutation(len(decoded_pieces))
    for i in range(pieces):
        piece_id, composer, notes, n_bars = decoded_pieces[order[i % len(decoded_pieces)]]
        lowest = min(prompt_bars, max(0, n_bars - bars))  # a short piece gets a shorter prompt
        first = int(rng.integers(lowest, max(lowest + 1, n_bars - bars + 1)))
        prompt, start, label = None, first * bar, f"bars {first + 1}-{first + bars}"
        if prompt_bars and first:
            begin = (first - min(prompt_bars, first)) * bar
            before = cut_excerpt(notes, begin, start - begin)
            if len(before):
                prompt = before
                start = begin + -(-int(before.end.max()) // bar) * bar  # the bar line after its last note
                label = f"bars {start // bar + 1}-{start // bar + bars} after bars {begin // bar + 1}-{start // bar}"
        cut = cut_excerpt(notes, start, length)
        words = codec.encode(cut, canonical=True) if len(cut) else np.zeros(0, dtype=np.int64)
        excerpts.append(Sample(words, cut, length, composer, f"{piece_id} {label}", prompt))
    return excerpts
