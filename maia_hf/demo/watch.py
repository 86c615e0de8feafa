"""Watch a decoding run from outside: count its steps, report progress, stop it at a deadline.

Every decoding step of a maia model ends in its output layer (`LeanGPT2Decoder` calls ``lm_head`` as the
model's own forward does), so a forward hook there sees each step of every generation path without a
change to the decoding code, and raising from it ends the run at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["DecodingWatch", "GenerationTimeout"]


class GenerationTimeout(Exception):
    """Raised inside decoding when the watch's deadline has passed; caught by the demo's handlers."""


class DecodingWatch:
    """A context manager that hooks the model's output layer while a generation runs.

    Args:
        model: a model with ``get_output_embeddings()`` (every maia model).
        max_seconds (`float`): after this long, the next step raises :class:`GenerationTimeout`.
        describe (*optional*): ``describe(steps) -> (fraction, text)`` for the progress report.
        report (*optional*): ``report(fraction, text)``, called at most every ``every`` seconds.
        every (`float`, *optional*, defaults to 0.25): seconds between reports.

    Example:

    ```python
    >>> import torch
    >>> from maia_hf import MaiaConfig, MaiaForCausalLM
    >>> from maia_hf.demo.watch import DecodingWatch, GenerationTimeout
    >>> model = MaiaForCausalLM(MaiaConfig(vocab_size=300, n_layer=1, n_head=2, n_embd=16)).eval()
    >>> with DecodingWatch(model, max_seconds=60) as watch:
    ...     _ = model(input_ids=torch.tensor([[2, 40]]))
    >>> watch.steps, watch.timed_out
    (1, False)
    >>> with DecodingWatch(model, max_seconds=0) as watch:
    ...     try:
    ...         _ = model(input_ids=torch.tensor([[2, 40]]))
    ...     except GenerationTimeout:
    ...         pass
    >>> watch.timed_out
    True

    ```
    """

    def __init__(self, model, max_seconds: float, describe: Callable | None = None, report: Callable | None = None,
                 every: float = 0.25):  # fmt: skip
        self.model = model
        self.max_seconds = max_seconds
        self.describe = describe
        self.report = report
        self.every = every
        self.steps = 0
        self.timed_out = False
        self.began = self._last_report = 0.0
        self.ended: float | None = None
        self._handle = None

    @property
    def seconds(self) -> float:
        """Seconds the run took (so far, while it runs)."""
        return (self.ended or time.perf_counter()) - self.began

    def __enter__(self) -> DecodingWatch:
        self.began = time.perf_counter()
        self._handle = self.model.get_output_embeddings().register_forward_hook(self._on_step)
        return self

    def __exit__(self, *exc_info) -> bool:
        self.ended = time.perf_counter()
        self._handle.remove()
        return False

    def _on_step(self, module, inputs, output) -> None:
        self.steps += 1
        now = time.perf_counter()
        if now - self.began >= self.max_seconds:
            self.timed_out = True
            raise GenerationTimeout(f"generation passed {self.max_seconds:g} s")
        if self.report is not None and self.describe is not None and now - self._last_report >= self.every:
            self._last_report = now
            self.report(*self.describe(self.steps))
