"""Streamers: hand over the notes of a piece as they are sampled."""

from __future__ import annotations

import time

import torch
from transformers.generation.streamers import BaseStreamer

__all__ = ["NoteStreamer"]


class NoteStreamer(BaseStreamer):
    """Receive tokens from ``generate(streamer=...)`` and hand over each note when it is complete.

    Like transformers' `TextStreamer`, but for music: ``on_note(pitch, start_step, end_step)`` is called
    as soon as a note's ``endp`` arrives, and a progress line shows bars written and tokens per second.
    The first ``put`` of each chunk is the (re-fed) prompt and is skipped. Sequences sampled as one batch
    each put their token of the step, a ``(batch,)`` tensor: the streamer follows the first sequence
    (row 0) and leaves the others alone; pads (a sequence that has ended) are not counted.

    Args:
        tokenizer (`MaiaTokenizer`): gives the vocabulary layout.
        on_note (*optional*): callback ``(pitch, start, end)`` for each completed note.
        bar_lines (`list[int]`, *optional*): bar lines of the piece, for the progress bar.
        start_step (`int`, *optional*, defaults to 0): where the new tokens begin.
        progress (`bool`, *optional*, defaults to `True`): show a tqdm progress bar (bars written).

    Example:

    ```python
    >>> import torch
    >>> from maia_hf import MaiaTokenizer
    >>> from maia_hf.generation import NoteStreamer
    >>> tokenizer = MaiaTokenizer()
    >>> streamer = NoteStreamer(tokenizer, start_step=48, progress=False)
    >>> streamer.put(torch.tensor([[tokenizer.bos_token_id]]))  # the prompt
    >>> for word in ["p60", "wait6", "endp60"]:
    ...     streamer.put(torch.tensor([tokenizer.convert_tokens_to_ids(word)]))
    >>> streamer.notes
    [(60, 48, 54)]

    ```
    """

    def __init__(self, tokenizer, on_note=None, bar_lines=None, start_step: int = 0, progress: bool = True):
        self.layout = tokenizer.layout
        self.on_note = on_note
        self.notes: list[tuple[int, int, int]] = []
        self.bar_lines = list(bar_lines or [])
        self.now = start_step
        self.start_step = start_step
        self._open: dict[int, int] = {}
        self._skip_next = True
        self.tokens = 0
        self._t0 = None
        self._bar = None
        if progress:
            from tqdm.auto import tqdm

            total = sum(1 for b in self.bar_lines if b > start_step) or None
            self._bar = tqdm(total=total, unit="bar", desc="generating", leave=False)

    def begin_chunk(self) -> None:
        """The next ``put`` is a (re-fed) prompt, not new tokens."""
        self._skip_next = True

    def put(self, value: torch.Tensor) -> None:
        """Take the prompt (B, T) or the tokens of one step (B,); follow row 0."""
        if self._skip_next:
            self._skip_next = False
            self._t0 = self._t0 or time.perf_counter()
            return
        row = value[0] if value.dim() == 2 else value[:1]  # (T,) or (1,): the first sequence's
        for token in row.tolist():
            self._token(int(token))

    def _token(self, token: int) -> None:
        lay = self.layout
        if token == lay.pad:
            return
        self.tokens += 1
        if lay.is_wait(token):
            before = self._bars_done()
            self.now += int(lay.wait_steps(token))
            if self._bar is not None:
                self._bar.update(self._bars_done() - before)
        elif lay.is_note_on(token):
            self._open[int(lay.pitch(token))] = self.now
        elif lay.is_note_off(token):
            pitch = int(lay.pitch(token))
            if pitch in self._open:
                note = (pitch, self._open.pop(pitch), self.now)
                self.notes.append(note)
                if self.on_note is not None:
                    self.on_note(*note)
        if self._bar is not None and self._t0 is not None:
            rate = self.tokens / max(time.perf_counter() - self._t0, 1e-9)
            self._bar.set_postfix_str(f"{rate:.0f} tokens/s", refresh=False)

    def _bars_done(self) -> int:
        return sum(1 for b in self.bar_lines if self.start_step < b <= self.now)

    def end(self) -> None:
        if self._bar is not None:
            self._bar.close()
