"""Best-of-N: sample N continuations of one history as one batch and keep the one the model finds likeliest.

The score of a continuation is the mean log-probability of its new tokens under the unconstrained model
(the raw logits, before the notewise constraints and the warpers), over the tokens up to and including
``<end>``: :class:`~maia_hf.generation.SequenceLogProbability` adds it up while the batch is decoded, so
ranking costs no second pass over the candidates.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from transformers import LogitsProcessor
from transformers.generation.streamers import BaseStreamer

from .decoding import sample_with_sliding_window
from .logits_process import SequenceLogProbability
from .settings import check_candidates

__all__ = ["RankedSample", "sample_best_of"]


class RankedSample(NamedTuple):
    """The kept candidate of a best-of-N batch, and the scores of all of them.

    Attributes:
        ids (`list[int]`): the kept candidate's new ids, ``<end>`` included when it came.
        candidate_scores (`list[float]`): each candidate's mean log-probability per new token (nats), in
            sampling order.
        chosen (`int`): index of the kept candidate in ``candidate_scores`` (the highest score).
        interventions, steps (`int`): the constraints' counts for the kept candidate (0 without constraints).
        seconds (`float`): wall time of the whole batch.
    """

    ids: list[int]
    candidate_scores: list[float]
    chosen: int
    interventions: int
    steps: int
    seconds: float

    @property
    def score(self) -> float:
        """The kept candidate's mean log-probability per new token (nats)."""
        return self.candidate_scores[self.chosen]


def sample_best_of(
    model,
    history: list[int],
    max_new_tokens: int,
    candidates: int = 1,
    constraints=None,
    streamer: BaseStreamer | None = None,
    logits_processor: list[LogitsProcessor] | None = None,
    *,
    sampler=None,
    **settings,
) -> RankedSample:
    """Sample ``candidates`` continuations of ``history`` as one batch; keep the one with the highest score.

    Args:
        model, history, max_new_tokens, constraints, streamer, logits_processor, **settings: as for
            :func:`~maia_hf.generation.sample_with_sliding_window` (``eos_token_id`` ends a candidate and
            ``pad_token_id`` fills it; neither is scored after ``<end>``).
        candidates (`int`, *optional*, defaults to 1): sequences sampled together. With one, the draws are
            those of a plain :func:`~maia_hf.generation.sample_with_sliding_window` call.
        sampler (*optional*): what samples the batch, with the arguments and result of
            :func:`~maia_hf.generation.sample_with_sliding_window` (the default); infilling passes its own.

    Returns:
        :class:`RankedSample`.

    Example:

    ```python
    >>> import torch
    >>> from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaTokenizer
    >>> from maia_hf.generation import NotewiseConstraintProcessor, prompt_ids, sample_best_of
    >>> tokenizer = MaiaTokenizer()
    >>> model = MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), n_layer=1, n_head=2, n_embd=16)).eval()
    >>> special = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    >>> _ = torch.manual_seed(0)
    >>> best = sample_best_of(
    ...     model, prompt_ids(tokenizer, None, "bach"), 30, candidates=3,
    ...     constraints=NotewiseConstraintProcessor(tokenizer, 30), **special,
    ... )
    >>> len(best.candidate_scores), best.score == max(best.candidate_scores), best.ids[-1] == tokenizer.eos_token_id
    (3, True, True)

    ```
    """
    check_candidates(candidates)
    scorer = SequenceLogProbability(settings.get("eos_token_id"), settings.get("pad_token_id"))
    began = time.perf_counter()
    rows = (sampler or sample_with_sliding_window)(
        model, history, max_new_tokens, constraints, streamer, logits_processor,
        num_sequences=candidates, scorer=scorer, **settings,
    )  # fmt: skip
    seconds = time.perf_counter() - began
    scores = scorer.mean_log_probability.tolist()
    chosen = max(range(candidates), key=scores.__getitem__)  # the first of equal scores
    counted = constraints is not None and constraints.row_steps is not None
    return RankedSample(
        ids=rows[chosen],
        candidate_scores=scores,
        chosen=chosen,
        interventions=int(constraints.row_interventions[chosen]) if counted else 0,
        steps=int(constraints.row_steps[chosen]) if counted else 0,
        seconds=seconds,
    )
