"""NoteStreamer: notes handed over as they are completed, for the first sequence of a batch."""

from __future__ import annotations

import torch

from maia_hf.generation import NoteStreamer


def test_streamer_follows_the_first_sequence_of_a_batch(tokenizer):
    ids = tokenizer.convert_tokens_to_ids
    notes = []
    streamer = NoteStreamer(tokenizer, on_note=lambda *note: notes.append(note), start_step=48, progress=False)
    streamer.put(torch.tensor([[tokenizer.bos_token_id], [tokenizer.bos_token_id]]))  # the prompt (B, T)
    for step in (["p60", "p72"], ["wait6", "wait3"], ["endp60", "endp72"]):
        streamer.put(torch.tensor(ids(step)))  # one token per sequence (B,), not two consecutive tokens
    assert notes == streamer.notes == [(60, 48, 54)] and streamer.tokens == 3
    streamer.put(torch.tensor([tokenizer.pad_token_id, ids("p64")]))  # the first sequence has ended
    assert streamer.tokens == 3 and streamer.now == 54
