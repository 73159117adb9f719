"""Final answers of numeric tasks: is the number the answer ends with the reference's?

For a math task (gsm8k), exact match against a whole worked solution scores every right answer
0. The final answer is what counts: the number after a `####` marker (gsm8k's convention) or,
without one, the last number in the text; commas, a currency sign and a trailing `.0` do not
matter (`1,000` = `1000` = `$1000.00`). A reference may also be the number itself, or a list of
acceptable answers.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from compoundai_evaluators.metrics.base import MeanMetric, Row, as_text

_MARKED = re.compile(r"####\s*([-+$]?[\d,]*\.?\d+)")
_NUMBER = re.compile(r"[-+]?\$?\d[\d,]*(?:\.\d+)?|[-+]?\.\d+")


def final_number(text: Any) -> Decimal | None:
    """The final answer of a text as a number, or None.

    >>> final_number("3 + 4 = 7. #### 7"), final_number("so she pays $1,250.00"), final_number("?")
    (Decimal('7'), Decimal('1250'), None)
    """
    text = as_text(text)
    marked = _MARKED.findall(text)
    found = marked[-1] if marked else (_NUMBER.findall(text) or [None])[-1]
    if found is None:
        return None
    try:
        value = Decimal(found.replace(",", "").replace("$", ""))
    except InvalidOperation:
        return None
    return value.normalize() if value != value.to_integral() else value.to_integral()


def _final_answer(row: Row) -> float:
    predicted = final_number(row.prediction)
    refs = row.reference if isinstance(row.reference, list) else [row.reference]
    return float(predicted is not None and any(final_number(r) == predicted for r in refs))


FINAL_ANSWER = MeanMetric(
    "final_answer",
    "the answer's final number equals the reference's (#### N or last number)",
    _final_answer,
)
