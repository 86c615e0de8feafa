"""Check that encoding then decoding gives back every note, and account for the notes it cannot.

For each input this compares three things: the notes as the file has them, the canonical notes (on
the grid, merged; see ``docs/encoding.md``) and the notes decoded from the words. The codec is
correct when decoded == canonical and re-encoding the decoded notes gives the same words; notes of
the file that do not come back exactly are attributed to the rule that changed them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from .codec import CanonicalReport, NotewiseCodec
from .io import RawPiece, read_raw, to_piece

__all__ = ["RoundTripReport", "roundtrip_raw", "roundtrip_source"]


@dataclass
class RoundTripReport:
    """Round-trip figures for one piece (or, summed, for many).

    Attributes:
        notes_read: pitched notes in the input (drum notes not counted).
        drum_notes_dropped: notes of drum tracks left out.
        notes_on_grid: input notes whose onset and offset lie exactly on the grid.
        notes_exact: input notes that came back with exactly their pitch, onset and offset.
        canonical_notes: notes after quantization and merging (what the words hold).
        canonical_restored: canonical notes that came back exactly (must equal ``canonical_notes``).
        text_stable: pieces whose decoded notes re-encode to the same words (must equal ``pieces``).
        changes: notes changed, by rule (see `CanonicalReport`).
    """

    pieces: int = 0
    notes_read: int = 0
    drum_notes_dropped: int = 0
    notes_on_grid: int = 0
    notes_exact: int = 0
    canonical_notes: int = 0
    canonical_restored: int = 0
    text_stable: int = 0
    tokens: int = 0
    changes: CanonicalReport | None = None

    @property
    def lossless(self) -> bool:
        """Decoding gave back every canonical note and the same words, in every piece."""
        return self.canonical_restored == self.canonical_notes and self.text_stable == self.pieces

    def __add__(self, other: RoundTripReport) -> RoundTripReport:
        fields = {k: getattr(self, k) + getattr(other, k) for k in asdict(self) if k != "changes"}
        changes = (self.changes or CanonicalReport()) + (other.changes or CanonicalReport())
        return RoundTripReport(**fields, changes=changes)

    def lost_reasons(self) -> dict[str, int]:
        """Notes changed by each rule (a note can be changed by more than one)."""
        c = self.changes or CanonicalReport()
        reasons = {
            "off the grid (quantized)": c.off_grid,
            "zero length after quantization (kept one step)": c.lengthened,
            "outside A0..C8 (folded by octaves)": c.folded,
            "same pitch and onset as another (merged)": c.merged_duplicates,
            "re-struck while sounding (cut at the re-strike)": c.cut_by_restrike,
            "drum track (dropped)": self.drum_notes_dropped,
        }
        return {k: v for k, v in reasons.items() if v}


def roundtrip_raw(raw: RawPiece, codec: NotewiseCodec) -> RoundTripReport:
    """Encode and decode one raw piece and count what came back."""
    piece, changes = to_piece(raw, codec)
    ids = codec.encode(piece.notes, canonical=True)
    decoded = codec.decode(ids).notes
    restored = _multiset_overlap(piece.notes.as_tuples(), decoded.as_tuples())
    stable = np.array_equal(codec.encode(decoded), ids)

    spq, tpq = codec.config.steps_per_quarter, raw.ticks_per_quarter
    n = raw.notes
    on_grid = ((n.start * spq) % tpq == 0) & ((n.end * spq) % tpq == 0)
    # Compare in units of 1/(tpq*spq) quarter: exact for both ticks and steps.
    original = list(zip(n.pitch.tolist(), (n.start * spq).tolist(), (n.end * spq).tolist(), strict=True))
    back = list(zip(decoded.pitch.tolist(), (decoded.start * tpq).tolist(), (decoded.end * tpq).tolist(), strict=True))
    return RoundTripReport(
        pieces=1,
        notes_read=len(n),
        drum_notes_dropped=raw.drum_notes_dropped,
        notes_on_grid=int(on_grid.sum()),
        notes_exact=_multiset_overlap(original, back),
        canonical_notes=len(piece.notes),
        canonical_restored=restored,
        text_stable=int(stable),
        tokens=len(ids),
        changes=changes,
    )


def roundtrip_source(source, codec: NotewiseCodec | None = None) -> RoundTripReport:
    """Round-trip every piece of a file or corpus path (see :func:`maia_hf.io.read_raw`), summed."""
    codec = codec or NotewiseCodec()
    total = RoundTripReport(changes=CanonicalReport())
    for raw in read_raw(source, codec):
        total = total + roundtrip_raw(raw, codec)
    return total


def _multiset_overlap(a: list, b: list) -> int:
    return sum((Counter(a) & Counter(b)).values())
