"""An optional LLM judge: a model behind any OpenAI-compatible endpoint grades each answer.

Off by default: it costs money or a second model, and a judge has its own biases (length,
position, self-preference), so reports lead with reference-based metrics and show the judge
as one more metric, with its interval, never as the verdict on its own. The judge reads a
rubric, the question, the reference and the answer, and replies with one integer from 1 to 5;
the score per case is `(grade - 1) / 4`. Replies without a grade count as undefined (NaN) and
are tallied in `failures`. Grades are memoised, so scoring a lane twice calls the judge once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from compoundai.errors import RunTimeFailure
from compoundai_evaluators.metrics.base import Row, as_text, safe_ratio

DEFAULT_RUBRIC = (
    "You grade answers. Compare the ANSWER with the REFERENCE for the QUESTION. Grade 5 if "
    "the answer is correct and complete, 3 if partly correct, 1 if wrong, off-topic or "
    "made up. Reply with the grade only: one integer from 1 to 5."
)
_GRADE = re.compile(r"\b([1-5])\b")


class LLMJudge:
    """A `Metric` that asks a judge model for a 1-5 grade per case.

    >>> judge = LLMJudge("gpt-4o-mini", base_url="http://127.0.0.1:8000/v1")  # doctest: +SKIP
    >>> compare(systems, cases, ["accuracy"], judge=judge)                     # doctest: +SKIP
    """

    name = "judge"
    description = "LLM judge grade, (grade - 1) / 4, averaged"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        rubric: str = DEFAULT_RUBRIC,
        client: Any = None,
        concurrency: int = 4,
    ) -> None:
        self.model = model
        self.rubric = rubric
        self.concurrency = concurrency
        if client is None:
            import openai

            client = openai.OpenAI(
                base_url=base_url, api_key=api_key or "not-needed", max_retries=2, timeout=60
            )
        self.client = client
        self.failures = 0
        self._grades: dict[str, float | None] = {}

    def _key(self, row: Row) -> str:
        blob = json.dumps([row.input, as_text(row.reference), as_text(row.prediction)])
        return hashlib.sha256(blob.encode()).hexdigest()

    def _ask(self, row: Row) -> float | None:
        content = (
            f"QUESTION:\n{row.input}\n\nREFERENCE:\n{as_text(row.reference)}\n\n"
            f"ANSWER:\n{as_text(row.prediction) or row.text}"
        )
        try:
            reply = self.client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": self.rubric},
                    {"role": "user", "content": content},
                ],
                temperature=0,
                max_tokens=8,
            )
        except Exception as exc:
            raise RunTimeFailure(f"the LLM judge ({self.model}) failed: {exc}") from exc
        match = _GRADE.search(reply.choices[0].message.content or "")
        if match is None:
            self.failures += 1
            return None
        return (int(match.group(1)) - 1) / 4

    def case_scores(self, rows: Sequence[Row]) -> np.ndarray:
        todo = {self._key(r): r for r in rows if self._key(r) not in self._grades}
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for key, grade in zip(todo, pool.map(self._ask, todo.values()), strict=True):
                self._grades[key] = grade
        grades = [self._grades[self._key(r)] for r in rows]
        return np.array([np.nan if g is None else g for g in grades], dtype=float)

    def stats(self, rows: Sequence[Row]) -> np.ndarray:
        scores = self.case_scores(rows)
        defined = ~np.isnan(scores)
        return np.stack([np.where(defined, scores, 0.0), defined.astype(float)], axis=-1)

    def aggregate(self, totals: np.ndarray) -> np.ndarray:
        return safe_ratio(totals[..., 0], totals[..., 1])
