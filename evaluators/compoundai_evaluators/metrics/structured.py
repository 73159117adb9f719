"""JSON outputs: validity, adherence to the task's JSON Schema, and field-level micro-F1.

Validity and adherence are separate because they fail differently: a small model often emits
well-formed JSON with the wrong keys. Field micro-F1 gives partial credit: both outputs are
flattened into `(path, value)` pairs (list items become `path[]` entries, compared as a
multiset, so slot order does not matter; strings compare case- and space-insensitively; numbers
by value, so `1` and `1.0` are the same), and true positives, false positives and false
negatives are summed over all cases.

Strict JSON: `NaN`, `Infinity` and `-Infinity` (which Python's `json` accepts) are not JSON, so
an output holding them is not valid. Schema adherence validates whatever JSON value the output
is (an array schema is met by an array), not only objects.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compoundai_evaluators.metrics.base import MeanMetric, Row, rows_from, safe_ratio, value_of

INVALID = object()  # what `parsed` returns for text that is not strict JSON


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


def parsed(value: Any) -> Any:
    """A JSON value from a prediction: strings are parsed strictly, anything else taken as is;
    `INVALID` when it is not JSON (a parse error, or NaN/Infinity anywhere in it).

    >>> parsed('{"a": 1}'), parsed('{"a": NaN}') is INVALID, parsed({"a": float("nan")}) is INVALID
    ({'a': 1}, True, True)
    """
    if isinstance(value, str):
        try:
            return json.loads(value, parse_constant=_reject_constant)
        except (json.JSONDecodeError, ValueError):
            return INVALID
    return value if _finite(value) else INVALID


def _is_object(row: Row) -> float:
    return float(isinstance(parsed(row.prediction), dict))


JSON_VALID = MeanMetric("json_valid", "share of outputs that parse as a JSON object", _is_object)


@dataclass(frozen=True)
class SchemaAdherence:
    """Share of outputs that are JSON objects valid under the task's JSON Schema.

    >>> m = SchemaAdherence({"type": "object", "required": ["a"]})
    >>> value_of(m, rows_from([{"a": 1}, {"b": 2}, "x"], [None] * 3))
    0.3333333333333333
    """

    schema: dict[str, Any] = field(default_factory=dict)
    name: str = "schema_adherence"
    description: str = "share of outputs valid under the task's JSON Schema"

    def _validator(self) -> Any:
        import jsonschema

        cls = jsonschema.validators.validator_for(self.schema)
        cls.check_schema(self.schema)
        return cls(self.schema)

    def case_scores(self, rows: Sequence[Row]) -> np.ndarray:
        validator = self._validator()
        out = []
        for r in rows:
            value = parsed(r.prediction)
            # None is a missing output here (the parser found no JSON), not JSON null
            ok = value is not INVALID and value is not None and validator.is_valid(value)
            out.append(float(ok))
        return np.array(out, dtype=float)

    def stats(self, rows: Sequence[Row]) -> np.ndarray:
        scores = self.case_scores(rows)
        return np.stack([scores, np.ones_like(scores)], axis=-1)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        return safe_ratio(totals[..., 0], totals[..., 1])


def _canonical(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(" ".join(value.lower().split()))
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 1.0 and 1 are the same number (bools stay bools)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def flatten_fields(value: Any, path: str = "") -> Counter[tuple[str, str]]:
    """`(path, canonical value)` pairs of a JSON value, as a multiset.

    >>> sorted(flatten_fields({"intent": "Book", "slots": ["a", "b"]}))
    [('intent', '"book"'), ('slots[]', '"a"'), ('slots[]', '"b"')]
    """
    pairs: Counter[tuple[str, str]] = Counter()
    if isinstance(value, dict):
        for key, sub in value.items():
            pairs += flatten_fields(sub, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for item in value:
            pairs[(f"{path}[]", _canonical(item))] += 1
    elif value is not None or path:
        pairs[(path, _canonical(value))] += 1
    return pairs


@dataclass(frozen=True)
class SlotF1:
    """Micro-F1 over `(field path, value)` pairs, summed over all cases."""

    name: str = "slot_f1"
    description: str = "micro-F1 over (field, value) pairs of JSON outputs"

    def _counts(self, row: Row) -> tuple[int, int, int]:
        reference = parsed(row.reference)
        gold = flatten_fields(None if reference is INVALID else reference)
        value = parsed(row.prediction)
        pred = flatten_fields(value) if isinstance(value, dict | list) else Counter()
        tp = sum((gold & pred).values())
        return tp, sum(pred.values()) - tp, sum(gold.values()) - tp

    def stats(self, rows: Sequence[Row]) -> np.ndarray:
        return np.array([self._counts(r) for r in rows], dtype=float).reshape(-1, 3)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        tp, fp, fn = totals[..., 0], totals[..., 1], totals[..., 2]
        return safe_ratio(2 * tp, 2 * tp + fp + fn)

    def case_scores(self, rows: Sequence[Row]) -> np.ndarray:
        return self.aggregate(self.stats(rows))


SLOT_F1 = SlotF1()


def json_valid(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """Share of predictions that parse as a JSON object.

    >>> json_valid([{"a": 1}, None, '{"b": 2}', "nope"], [None] * 4)
    0.5
    """
    return value_of(JSON_VALID, rows_from(predictions, references)) if predictions else 0.0


def slot_f1(predictions: Sequence[Any], references: Sequence[Any]) -> float:
    """Field-level micro-F1 of JSON predictions against JSON references.

    >>> slot_f1([{"intent": "book", "city": "Paris"}], [{"intent": "book", "city": "Rome"}])
    0.5
    """
    return value_of(SLOT_F1, rows_from(predictions, references)) if references else 0.0
