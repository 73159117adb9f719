"""Cached answers, so a re-run only computes what changed.

An answer is stored under a key made of three hashes: the system's fingerprint (lane, name,
generator, instructions, output contract, shots, decoding settings, and whatever the lane put
in `info["fingerprint"]`, e.g. an adapter's content hash), the case id, and the exact prompt
the system builds for the case. Change the instructions, the demonstrations a case gets, the
model or the case text, and only the affected answers are generated again.

The store is one JSONL file per system fingerprint under the cache directory (by default
`REPORT_DIR/cache/`, so deleting the report deletes its cache). Appends only; a torn last line
from a killed run is skipped on read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from compoundai.contract import Answer
from compoundai.data import Example
from compoundai.provenance import json_digest
from compoundai_evaluators.evaluable import Evaluable, Prompted


def _plain(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def fingerprint(system: Evaluable) -> str:
    """A stable hash of what determines a system's answers (not its timings).

    >>> from compoundai.contract import OutputContract
    >>> from compoundai.system import CompoundSystem
    >>> from compoundai.testing import FakeGenerator
    >>> a = CompoundSystem("s", "prompt", "Say.", OutputContract(), FakeGenerator())
    >>> b = CompoundSystem("s", "prompt", "Say more.", OutputContract(), FakeGenerator())
    >>> fingerprint(a) == fingerprint(a), fingerprint(a) == fingerprint(b)
    (True, False)
    """
    generator = system.generator
    parts = {
        "name": system.name,
        "lane": system.lane,
        "class": type(system).__qualname__,
        "generator": getattr(generator, "name", type(generator).__qualname__),
        # what a CompoundSystem adds; a plain Evaluable has none of these
        "instructions": getattr(system, "instructions", None),
        "contract": _plain(getattr(system, "contract", None)),
        "shots": getattr(system, "shots", None),
        "generation": _plain(getattr(system, "generation", None)),
        "fingerprint": system.info.fingerprint,
    }
    return json_digest(parts)[:24]


def prompt_keys(system: Evaluable, cases: Sequence[Example]) -> list[str]:
    """One key per case: system fingerprint + case id + hash of the prompt built for it."""
    inputs = [c.input for c in cases]
    prompts: Sequence[Any] = inputs
    if isinstance(system, Prompted):
        prompts = system.prompts(inputs)
    fp = fingerprint(system)
    return [json_digest([fp, c.id, p]) for c, p in zip(cases, prompts, strict=True)]


def _answer_row(key: str, answer: Answer) -> dict[str, Any]:
    return {"key": key, **asdict(answer)}


class OutputCache:
    """Answers by key, on disk.

    >>> import tempfile
    >>> cache = OutputCache(tempfile.mkdtemp())
    >>> cache.put("fp", {"k": Answer("hi", "hi")})
    >>> cache.get("fp", ["k", "other"])["k"].text
    'hi'
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _file(self, system_fp: str) -> Path:
        return self.root / f"{system_fp}.jsonl"

    def get(self, system_fp: str, keys: Sequence[str]) -> dict[str, Answer]:
        path = self._file(system_fp)
        if not path.is_file():
            return {}
        wanted, found = set(keys), {}
        for line in path.read_text(encoding="utf-8").split("\n"):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line from an interrupted run
            key = row.pop("key", None)
            if key in wanted:
                found[key] = Answer(**row)
        return found

    def put(self, system_fp: str, answers: dict[str, Answer]) -> None:
        if not answers:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with self._file(system_fp).open("a", encoding="utf-8") as fh:
            for key, answer in answers.items():
                fh.write(json.dumps(_answer_row(key, answer), default=str) + "\n")
