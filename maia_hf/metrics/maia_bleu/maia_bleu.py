"""maia's BLEU over notewise n-grams, as an `evaluate` metric module (loads offline from this folder)."""

import datasets
import evaluate

from .notewise_bleu import MAIA_BLEU_WEIGHTS, bleu_from_matches, count_matches_per_prediction

_CITATION = """\
@inproceedings{papineni2002bleu,
  title = {{BLEU}: a Method for Automatic Evaluation of Machine Translation},
  author = {Papineni, Kishore and Roukos, Salim and Ward, Todd and Zhu, Wei-Jing},
  booktitle = {Proceedings of the 40th Annual Meeting of the Association for Computational Linguistics},
  pages = {311--318},
  year = {2002},
}
@misc{payne2019clara,
  title = {Clara: A Neural Net Music Generator},
  author = {Payne, Christine},
  year = {2019},
  howpublished = {\\url{http://christinemcleavey.com/clara-a-neural-net-music-generator/}},
}
"""

_DESCRIPTION = """\
maia_bleu scores music written in Christine Payne's notewise encoding (``p60 wait6 endp60``) by how
many of its n-grams occur in a set of reference pieces: BLEU (Papineni et al., 2002) over notewise
words, with fixed weights on the 1- to 5-gram precisions, (0.05, 0.05, 0.1, 0.4, 0.4), and none on
6-grams and longer.

Why these weights, and why no brevity penalty by default: see this metric's card (README.md).

How to read it: compare with the score of real held-out music against the same references. A model
far below it does not write the corpus's figures; a model far above it repeats the corpus's commonest
figures more than real music does (or copies it: see maia's memorisation check). The brevity penalty
is off by default: the length of a generated piece is chosen by whoever generates it.
"""

_KWARGS_DESCRIPTION = """
Computes maia's BLEU of notewise predictions against references.

Args:
    predictions (`list[str]`): notewise texts, e.g. ``"p60 p64 wait12 endp60 endp64"``; special tokens
        such as ``<start>`` or ``<composer:mozart>`` are dropped.
    references (`list[list[str]]` or `list[str]`): the references of each prediction (often the same
        pool, e.g. the training pieces, for every prediction: it is then counted once), or one
        reference per prediction. Each n-gram of a prediction matches at most as often as it occurs in
        the one reference where it occurs most.
    smooth (`bool`, *optional*, defaults to `False`): add one to every order's matches and n-grams
        (Lin and Och, 2004), so that one order without any match does not zero the score.
    brevity_penalty (`bool`, *optional*, defaults to `False`): multiply by BLEU's brevity penalty
        (closest reference length).

Returns:
    bleu (`float`): the score, 0..1.
    precision_1 .. precision_5 (`float`): the clipped n-gram precision of each order.
    brevity_penalty (`float`): the factor applied (1.0 when off).
    length_ratio (`float`): words of the predictions over words of their closest references.
    prediction_length (`int`), reference_length (`int`): those word counts.

Examples:

    A prediction whose every n-gram occurs in the references scores 1:

    >>> import evaluate
    >>> from maia_hf.metrics import MAIA_BLEU_PATH
    >>> maia_bleu = evaluate.load(MAIA_BLEU_PATH)
    >>> scale = "p60 wait6 endp60 p62 wait6 endp62 p64 wait6 endp64"
    >>> results = maia_bleu.compute(predictions=[scale], references=[[scale + " p65 wait6 endp65"]])
    >>> results["bleu"], results["precision_5"]
    (1.0, 1.0)

    Changing the last note loses every n-gram that reaches it (7/9 words, 5/8 bigrams ... 2/5 5-grams match):

    >>> changed = "p60 wait6 endp60 p62 wait6 endp62 p67 wait6 endp67"
    >>> results = maia_bleu.compute(predictions=[changed], references=[[scale]])
    >>> [round(results[f"precision_{n}"], 3) for n in range(1, 6)]
    [0.778, 0.625, 0.571, 0.5, 0.4]
    >>> round(results["bleu"], 4)
    0.4791
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MaiaBleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("string", id="sequence"),
                        "references": datasets.Sequence(datasets.Value("string", id="sequence"), id="references"),
                    }
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Value("string", id="sequence"),
                        "references": datasets.Value("string", id="sequence"),
                    }
                ),
            ],
            codebase_urls=["https://github.com/maia-hf/maia"],
            reference_urls=["https://aclanthology.org/P02-1040/"],
        )

    def _compute(self, predictions, references, smooth=False, brevity_penalty=False):
        matches = count_matches_per_prediction(predictions, references, len(MAIA_BLEU_WEIGHTS))
        return bleu_from_matches(matches, MAIA_BLEU_WEIGHTS, smooth=smooth, brevity_penalty=brevity_penalty)
