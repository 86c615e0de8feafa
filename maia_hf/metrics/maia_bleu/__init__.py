"""The ``maia_bleu`` evaluate metric: load it with ``evaluate.load(maia_hf.metrics.MAIA_BLEU_PATH)``.

This folder is an `evaluate` metric module (``maia_bleu.py``, named like the folder) with its math in
``notewise_bleu.py``. Importing the package does not import `evaluate`.
"""

from .notewise_bleu import MAIA_BLEU_WEIGHTS, notewise_bleu

__all__ = ["MAIA_BLEU_WEIGHTS", "notewise_bleu"]
