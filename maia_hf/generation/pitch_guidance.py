"""The key guidance's logits processor: lean the note-ons toward a prompt's pitch classes, in balance.

:class:`KeyProfile` is what a prompt's pitch classes give the lean (how long each sounds, how often each
starts); :class:`PitchClassGuidance` is the processor. :func:`~maia_hf.generation.guidance.resolve_guidance`
makes the profile from a prompt, and ``continue_piece`` and ``infill_piece`` run the processor after the
notewise constraints.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from transformers import LogitsProcessor

from ..errors import MaiaInputError

__all__ = ["KeyProfile", "PitchClassGuidance"]


class KeyProfile(NamedTuple):
    """A prompt's pitch classes as key guidance reads them: how long each sounds, and how often it starts.

    Attributes:
        durations (`numpy.ndarray` of shape `(12,)`): steps each pitch class sounds, as a distribution (C first).
        onsets (`numpy.ndarray` of shape `(12,)`): the share of the note-ons on each pitch class.
    """

    durations: object
    onsets: object

    @classmethod
    def of(cls, notes) -> KeyProfile:
        """The profile of a `NoteArray` (at least one note)."""
        import numpy as np

        from ..evaluation.fidelity import pitch_class_profile

        onsets = np.bincount(np.asarray(notes.pitch) % 12, minlength=12).astype(float)
        return cls(pitch_class_profile(notes), onsets / max(onsets.sum(), 1.0))


class PitchClassGuidance(LogitsProcessor):
    """Lean the model toward a key: which pitches it starts moves toward a pitch-class profile, how many does not.

    Among the note-on words of each step, ``p(p_n) ∝ p_model(p_n) · (q(c) · (q_on(c) / w(c))^balance)^strength``
    with ``c = n mod 12``, renormalised so that the note-ons keep the probability the model gave them together:
    the music is as dense as the model makes it, and only the choice of pitch leans.

    - ``q`` is a pitch-class distribution, usually the prompt's (each pitch class weighted by how long it
      sounds, :func:`~maia_hf.evaluation.fidelity.pitch_class_profile`), floored at ``floor`` so that no pitch
      class is ever ruled out: a chromatic passing note stays possible, only less likely.
    - The **balance** term compares the note-ons in view (the window's, ``w``: their pitch-class shares,
      smoothed toward ``q_on`` as if ``prior`` more notes had it) with the prompt's own share of note-ons,
      ``q_on``: a pitch class the music in view already overuses is leaned away from, one it neglects toward.
      Without it the lean keeps favouring the prompt's commonest pitch classes however much the
      continuation has played them (on Mozart's Lacrimosa a continuation spent 61 % of its sounding time on
      one pitch class, against 22 % in the prompt; docs/maia-small.md).

    Strength 0 changes nothing; 1 weighs the model and the profile alike. Works on any batch, window and
    position, before or after the constraints (``-inf`` stays ``-inf``).

    Args:
        tokenizer (`MaiaTokenizer`): gives the vocabulary layout.
        profile (array of 12 floats, or `KeyProfile`): the pitch-class weights (C first; any positive scale),
            or a prompt's `KeyProfile` (its durations are ``q``, its onsets ``q_on``).
        strength (`float`): the exponent (>= 0).
        floor (`float`, *optional*, defaults to 0.01): the least share any pitch class counts as having.
        balance (`float`, *optional*, defaults to 1.0): weight of the balance term (0: the plain lean toward ``q``).
        prior (`float`, *optional*, defaults to 16.0): notes of ``q_on`` the window's shares start from.

    Example:

    ```python
    >>> import torch
    >>> from maia_hf import MaiaTokenizer
    >>> from maia_hf.generation import PitchClassGuidance
    >>> tokenizer = MaiaTokenizer()
    >>> c_major = [1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1]
    >>> lean = PitchClassGuidance(tokenizer, c_major, strength=1.0)
    >>> logits = torch.full((1, len(tokenizer)), -float("inf"))
    >>> ids = tokenizer.convert_tokens_to_ids(["p60", "p61", "wait6"])
    >>> logits[0, ids] = 0.0  # the model: C, C# and a wait, a third each
    >>> [round(float(p), 3) for p in lean(None, logits).softmax(-1)[0, ids]]  # C# gives way; the wait keeps 1/3
    [0.623, 0.044, 0.333]
    >>> many_cs = torch.tensor([tokenizer.convert_tokens_to_ids(["p60", "wait6", "endp60"] * 8)])
    >>> [round(float(p), 3) for p in lean(many_cs, logits).softmax(-1)[0, ids]]  # eight Cs in view: less C
    [0.502, 0.164, 0.333]

    ```
    """

    def __init__(self, tokenizer, profile, strength: float, floor: float = 0.01, *, balance: float = 1.0,
                 prior: float = 16.0):  # fmt: skip
        import numpy as np

        onsets = None
        if isinstance(profile, KeyProfile):
            profile, onsets = profile.durations, profile.onsets
        profile = np.asarray(profile, dtype=float)
        if profile.shape != (12,) or not np.isfinite(profile).all() or (profile < 0).any() or profile.sum() <= 0:
            raise MaiaInputError("a pitch-class profile is 12 weights >= 0, not all zero (C first)")
        for name, value in (("strength", strength), ("balance", balance)):
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0):
                raise MaiaInputError(f"the key guidance's {name} must be a number >= 0, got {value!r}")
        if not (isinstance(prior, (int, float)) and prior > 0):
            raise MaiaInputError(f"the key guidance's prior must be a number of notes > 0, got {prior!r}")
        lay = tokenizer.layout
        share = np.log(np.maximum(profile / profile.sum(), floor))
        onsets = profile if onsets is None else np.asarray(onsets, dtype=float)
        target = np.maximum(onsets / max(onsets.sum(), 1e-12), floor)
        pitches = np.arange(lay.pitch_min, lay.pitch_min + lay.n_pitches)
        self.bias = torch.tensor(strength * share[pitches % 12], dtype=torch.float)  # (n_pitches,)
        self.ons = slice(lay.on, lay.on + lay.n_pitches)
        self.strength, self.balance, self.prior = float(strength), float(balance), float(prior)
        self._layout = lay
        self._target = torch.tensor(target / target.sum(), dtype=torch.float)  # q_on, (12,)
        self._pitch_class = torch.tensor(pitches % 12)  # (n_pitches,)

    def _balance_bias(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """``strength * balance * log(q_on / w)`` per row and pitch, (B, n_pitches)."""
        lay = self._layout
        is_on = lay.is_note_on(input_ids)
        pitch_class = ((input_ids - lay.on).clamp(0, lay.n_pitches - 1) + lay.pitch_min) % 12
        counts = torch.zeros(input_ids.shape[0], 12, device=input_ids.device)
        counts.scatter_add_(1, pitch_class, is_on.to(counts.dtype))
        target = self._target.to(counts.device)
        seen = (counts + self.prior * target) / (counts.sum(dim=1, keepdim=True) + self.prior)
        lean = self.strength * self.balance * (target.log() - seen.log())  # (B, 12)
        return lean[:, self._pitch_class.to(counts.device)]

    def __call__(self, input_ids, scores: torch.FloatTensor) -> torch.FloatTensor:
        ons = scores[:, self.ons]
        bias = self.bias.to(device=scores.device, dtype=scores.dtype)
        if self.balance and self.strength and input_ids is not None and input_ids.shape[1]:
            bias = bias + self._balance_bias(input_ids).to(scores.dtype)
        leaned = ons + bias
        # Keep the note-ons' total: shift them by log(their mass before / after). A row whose note-ons are
        # all masked keeps -inf (the shift is made 0 there, not NaN).
        shift = (ons.logsumexp(dim=-1, keepdim=True) - leaned.logsumexp(dim=-1, keepdim=True)).nan_to_num(0.0)
        out = scores.clone()
        out[:, self.ons] = leaned + shift
        return out
