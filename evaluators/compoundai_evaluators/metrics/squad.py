"""SQuAD v2 exact match and token F1, as the official evaluation script defines them.

Normalisation: lower-case, drop every `string.punctuation` character, drop the articles
a/an/the as whole words, collapse whitespace. With several references the best one counts;
references that normalise to nothing are dropped, and a case left with none is unanswerable,
where only an empty prediction scores 1 (the v2 rule).

What is scored is `scored_prediction(row)`: the prediction, or the empty string when the answer
abstains by the output contract's one rule (`compoundai.contract.is_refusal`: flagged by the
lane, empty, or a refusal such as "I'm not sure"). So a refusal scores the same through every
lane, whether or not the lane itself turned it into an empty answer.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

from compoundai.contract import is_refusal
from compoundai_evaluators.metrics.base import MeanMetric, Row, as_text, rows_from, value_of

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower, drop punctuation, drop a/an/the, squeeze spaces.

    >>> normalize_answer("The  Denver Broncos!")
    'denver broncos'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def gold_answers(reference: Any) -> list[str]:
    """The references that count: non-empty after normalisation, else `[""]` (unanswerable)."""
    refs = reference if isinstance(reference, list | tuple) else [reference]
    kept = [as_text(r) for r in refs if normalize_answer(as_text(r))]
    return kept or [""]


def f1_score(prediction: str, reference: str) -> float:
    """Token-overlap F1 of one prediction against one reference.

    >>> f1_score("in the year 1998", "1998")
    0.5
    """
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def scored_prediction(row: Row) -> str:
    """The prediction as text, or `""` when the answer abstains (see the module docstring).

    >>> [scored_prediction(Row("1", "q", "", text)) for text in ("I'm not sure.", "A")]
    ['', 'A']
    """
    if row.extra.get("abstained") is True:
        return ""
    text = as_text(row.prediction)
    return "" if is_refusal(text) else text


def _exact(row: Row) -> float:
    pred = normalize_answer(scored_prediction(row))
    return max(float(pred == normalize_answer(g)) for g in gold_answers(row.reference))


def _f1(row: Row) -> float:
    pred = scored_prediction(row)
    return max(f1_score(pred, g) for g in gold_answers(row.reference))


EXACT_MATCH = MeanMetric("exact_match", "SQuAD v2 exact match, best over references", _exact)
TOKEN_F1 = MeanMetric("f1", "SQuAD v2 token F1, best over references", _f1)


def exact_match(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """SQuAD exact match, best over each case's references.

    >>> exact_match(["The Eiffel Tower!"], [["eiffel tower", "tower"]])
    1.0
    """
    return value_of(EXACT_MATCH, rows_from(predictions, references)) if references else 0.0


def token_f1(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """SQuAD token F1, best over each case's references.

    >>> round(token_f1(["in the year 1998"], [["1998"]]), 4)
    0.5
    """
    return value_of(TOKEN_F1, rows_from(predictions, references)) if references else 0.0
