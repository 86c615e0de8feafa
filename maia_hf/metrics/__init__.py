"""maia's metrics: BLEU over notewise n-grams, as a pure function and as an `evaluate` metric module.

Example:

```python
>>> import evaluate
>>> from maia_hf.metrics import MAIA_BLEU_PATH, notewise_bleu
>>> maia_bleu = evaluate.load(MAIA_BLEU_PATH)      # works offline: a local metric module
>>> phrase, reference = "p60 wait6 endp60 p62 wait6", "p60 wait6 endp60 p62 wait6 endp62"
>>> maia_bleu.compute(predictions=[phrase], references=[[reference]])["bleu"]
1.0
>>> notewise_bleu([phrase], [reference])["bleu"]   # the same math, without evaluate
1.0

```
"""

from pathlib import Path

from .maia_bleu.notewise_bleu import (
    MAIA_BLEU_WEIGHTS,
    MAX_ORDER,
    NgramMatches,
    bleu_from_matches,
    count_matches,
    count_matches_per_prediction,
    cumulative_bleu,
    notewise_bleu,
)

__all__ = [
    "MAIA_BLEU_PATH",
    "MAIA_BLEU_WEIGHTS",
    "MAX_ORDER",
    "NgramMatches",
    "bleu_from_matches",
    "count_matches",
    "count_matches_per_prediction",
    "cumulative_bleu",
    "notewise_bleu",
]

# The metric module's folder: evaluate.load(MAIA_BLEU_PATH) works from any working directory.
MAIA_BLEU_PATH = str(Path(__file__).parent / "maia_bleu")
