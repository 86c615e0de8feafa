"""Planned pieces to token sequences, one row per key: the transposed encoding, the writer, the generator.

The builder plans every piece (:class:`PlannedPiece`: its cached notes, id, composer, split and keys);
:func:`generate_sequences`, run by ``Dataset.from_generator`` over the shards of
:func:`balanced_shards`, turns each into one ``<start> <composer:NAME> words... <end>`` row per key
through a :class:`SequenceWriter`, which keeps each key's words in the cache beside the notes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codec import CodecConfig, NoteArray, NotewiseCodec
from .pieces import load_notes

__all__ = ["PlannedPiece", "SequenceWriter", "balanced_shards", "encode_transposed", "generate_sequences"]


@dataclass(frozen=True)
class PlannedPiece:
    """One piece to write: where its notes are cached, its id, composer, split and keys."""

    cache_file: str
    index: int  # the piece's position in the cache file
    piece_id: str
    composer: str
    composer_id: int
    source: str
    transpositions: tuple[int, ...]
    notes: int


def encode_transposed(codec: NotewiseCodec, notes: NoteArray, transpose: int, unfolded: NoteArray | None = None):
    """``codec.encode`` of a piece transposed, from its canonical notes; faster when no note folds.

    Shifting every pitch of canonical notes by the same amount keeps them canonical unless a pitch
    leaves the range and folds onto another, so the merge pass is needed only then. A piece whose
    file had notes outside the range comes with ``unfolded`` (its notes before folding): the spec
    transposes the file's pitches and then folds, which folding first and transposing after would
    not match (110 transposed by -5 is 105, not 98 - 5).
    """
    if unfolded is not None and transpose != 0:
        return codec.encode(unfolded, transpose=transpose)
    pitch = notes.pitch + transpose
    low, high = codec.config.pitch_min, codec.config.pitch_max
    if len(pitch) == 0 or (pitch.min() >= low and pitch.max() <= high):
        return codec.encode(NoteArray(pitch, notes.start, notes.end, notes.velocity), canonical=True)
    return codec.encode(notes, transpose=transpose)


@dataclass(frozen=True)
class SequenceWriter:
    """Turns a piece's cached notes into token sequences, one per key; small and picklable for workers.

    With ``cache_tokens``, each key's words are kept beside the piece's notes in the cache
    (``KEY.PIECE.+K.i16``: raw little-endian int16, read without parsing a header), so a rebuild
    neither encodes them again nor even opens the notes.
    """

    codec_config: dict
    codec_offset: int
    bos_id: int
    eos_id: int
    cache_tokens: bool = True

    def sequences(self, codec: NotewiseCodec, notes, plan: PlannedPiece):
        """Rows of the sequences dataset; ``notes()`` gives ``(canonical, unfolded)`` notes when needed."""
        for transpose in plan.transpositions:
            body = self._words(codec, notes, plan, transpose)
            ids = np.empty(len(body) + 3, dtype="<i4")
            ids[0], ids[1], ids[-1] = self.bos_id, plan.composer_id, self.eos_id
            ids[2:-1] = body + self.codec_offset
            yield {
                "piece_id": plan.piece_id,
                "composer": plan.composer,
                "source": plan.source,
                "transpose": transpose,
                "n_tokens": len(ids),
                "n_notes": int(np.count_nonzero(body < codec.off_offset)),
                "tokens": ids.tobytes(),
            }

    def _words(self, codec: NotewiseCodec, notes, plan: PlannedPiece, transpose: int) -> np.ndarray:
        cached = Path(f"{plan.cache_file.removesuffix('.npz')}.{plan.index}.{transpose:+d}.i16")
        if self.cache_tokens and cached.exists():
            return np.fromfile(cached, dtype="<i2")
        canonical, unfolded = notes()
        body = encode_transposed(codec, canonical, transpose, unfolded).astype("<i2")
        if self.cache_tokens:  # written whole, then renamed: a reader never sees half a file
            tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
            body.tofile(tmp)
            os.replace(tmp, cached)
        return body


def generate_sequences(shards: list[list[PlannedPiece]], writer: SequenceWriter):
    """The ``Dataset.from_generator`` generator: each piece of each shard, once per key, in order."""
    codec = NotewiseCodec(CodecConfig(**writer.codec_config))
    loaded: dict[str, list] = {}  # the last cache file read; pieces of one file are consecutive

    def notes_of(plan: PlannedPiece):
        if plan.cache_file not in loaded:
            loaded.clear()
            loaded[plan.cache_file] = load_notes(plan.cache_file)
        return loaded[plan.cache_file][plan.index]

    for shard in shards:
        for plan in shard:
            yield from writer.sequences(codec, lambda plan=plan: notes_of(plan), plan)


def balanced_shards(plan: list[PlannedPiece], n: int) -> list[list[PlannedPiece]]:
    """Cut the plan into at most ``n`` contiguous shards of about equal work (row order stays the plan's)."""
    weights = np.cumsum([p.notes * len(p.transpositions) + 1 for p in plan])
    cuts = np.searchsorted(weights, weights[-1] * np.arange(1, n) / n)
    return [[plan[i] for i in chunk] for chunk in np.split(np.arange(len(plan)), cuts) if len(chunk)]
