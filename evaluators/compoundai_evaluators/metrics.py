"""Metrics: plain callables `(predictions, references) -> float` over whole lists.

Corpus-level callables (macro-F1 needs every case at once) keep one shape for all metrics, so
the bootstrap can resample cases and call any metric the same way. EM/F1 follow the official
SQuAD v2 evaluation script's normalisation (lower-case, strip punctuation and articles,
collapse whitespace); with several references the best one counts.
"""

from __future__ import annotations

import contextlib
import json
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

Metric = Callable[[Sequence[Any], Sequence[Any]], float]


def accuracy(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """Share of predictions equal to their reference.

    >>> accuracy(["a", "b", "c"], ["a", "b", "b"])
    0.6666666666666666
    """
    if not references:
        return 0.0
    return sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)


def macro_f1(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """Unweighted mean of per-label F1 over the labels that occur in the references.

    >>> round(macro_f1(["a", "a", "b"], ["a", "b", "b"]), 4)
    0.6667
    """
    labels = sorted(set(references), key=str)
    if not labels:
        return 0.0
    scores = []
    for label in labels:
        tp = sum(p == label and r == label for p, r in zip(predictions, references, strict=True))
        fp = sum(p == label and r != label for p, r in zip(predictions, references, strict=True))
        fn = sum(p != label and r == label for p, r in zip(predictions, references, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower, drop punctuation, drop a/an/the, squeeze spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _refs(reference: Any) -> list[str]:
    if isinstance(reference, list | tuple):
        return [str(r) for r in reference] or [""]
    return [str(reference)]


def _f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """SQuAD exact match, best over each case's references.

    >>> exact_match(["The Eiffel Tower!"], [["eiffel tower", "tower"]])
    1.0
    """
    if not references:
        return 0.0
    hits = [
        max(float(normalize_answer(str(p or "")) == normalize_answer(r)) for r in _refs(ref))
        for p, ref in zip(predictions, references, strict=True)
    ]
    return sum(hits) / len(hits)


def token_f1(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """SQuAD token F1, best over each case's references.

    >>> round(token_f1(["in the year 1998"], [["1998"]]), 4)
    0.5
    """
    if not references:
        return 0.0
    scores = [
        max(_f1(str(p or ""), r) for r in _refs(ref))
        for p, ref in zip(predictions, references, strict=True)
    ]
    return sum(scores) / len(scores)


def json_valid(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """Share of predictions that parsed as a JSON object (the parser leaves None otherwise)."""
    if not predictions:
        return 0.0
    ok = 0
    for p in predictions:
        if isinstance(p, str):
            with contextlib.suppress(json.JSONDecodeError):
                ok += isinstance(json.loads(p), dict)
        else:
            ok += isinstance(p, dict)
    return ok / len(predictions)


METRICS: dict[str, Metric] = {
    "accuracy": accuracy,
    "macro_f1": macro_f1,
    "exact_match": exact_match,
    "f1": token_f1,
    "json_valid": json_valid,
}
