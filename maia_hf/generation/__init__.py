"""Generation: prompt -> constrained decoding -> notes.

Modules, in the order music flows through them:

- ``prompts``: :func:`read_prompt`, the one reader of prompts (files, corpus names, notewise text, MIDI bytes).
- ``logits_process``: :class:`NotewiseConstraintProcessor`, the rules that keep sampled text well-formed,
  :class:`SequenceLogProbability`, the unconstrained model's score of what was drawn, and the sampling warpers.
- ``pitch_guidance``: :class:`PitchClassGuidance` (a lean toward the prompt's key, in balance) and :class:`KeyProfile`.
- ``guidance``: :func:`prompt_grid` and :func:`resolve_guidance`, the key and onset grid a prompt keeps.
- ``decoding``: :func:`sample` (the loop of ``generate(do_sample=True)``, lean), the lean GPT-2 decoder
  behind it and :func:`sample_with_sliding_window`, which lets any model write any length.
- ``ranking``: :func:`sample_best_of`, N candidates decoded as one batch, the likeliest kept.
- ``continuation``: :func:`continue_piece` (bar-accurate prompts and endings) and :func:`continue_ids`.
- ``infill``: :func:`infill_piece` and :func:`infill_between`, the middle of a piece written exactly in its gap.
- ``streamers``: :class:`NoteStreamer`, notes handed over as they are completed.

Names load on first use, so reading :data:`DEFAULT_MAX_NOTE_QUARTERS` (``maia --help`` does) costs no
import of torch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "DEFAULT_MAX_NOTE_QUARTERS": "continuation",
    "Continuation": "continuation",
    "check_candidates": "settings",
    "check_generation_settings": "settings",
    "continue_ids": "continuation",
    "continue_piece": "continuation",
    "max_note_steps": "continuation",
    "prompt_end": "continuation",
    "prompt_ids": "continuation",
    "Infill": "infill",
    "bar_span": "infill",
    "infill_between": "infill",
    "infill_piece": "infill",
    "NotewiseConstraintProcessor": "logits_process",
    "KeyProfile": "pitch_guidance",
    "PitchClassGuidance": "pitch_guidance",
    "prompt_grid": "guidance",
    "resolve_guidance": "guidance",
    "SequenceLogProbability": "logits_process",
    "sampling_warpers": "logits_process",
    "LeanGPT2Decoder": "lean_decoder",
    "sample": "decoding",
    "sample_with_sliding_window": "decoding",
    "RankedSample": "ranking",
    "sample_best_of": "ranking",
    "NoteStreamer": "streamers",
    "read_prompt": "prompts",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'maia_hf.generation' has no attribute {name!r}")


def __dir__():
    return __all__
