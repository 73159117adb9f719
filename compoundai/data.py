"""The user's data: JSONL rows read through a field mapping, checked row by row, and sampled.

Every problem is collected (bad JSON, missing field, unknown label, non-UTF-8 bytes, an empty
file) with its file and line, so a user fixes them all in one pass instead of one per run.
`sample_cases` is the one way cases are drawn (the held-out sample a report scores, the
training prompts the compound lane builds, the dev sample a decision measures on), so every
part of a run draws the same cases from the same seed. `write_jsonl` / `read_jsonl` are the
plain writer and reader of the JSONL files the project writes itself (system directories,
adapter training rows).
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from compoundai.contract import ABSTAIN_TEXT
from compoundai.errors import Problem

T = TypeVar("T")


@dataclass(frozen=True)
class Example:
    """One labelled case: the input text and the expected output (text, label or JSON)."""

    id: str
    input: str
    output: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # "file:line", for error messages and reports


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with a chosen and a rejected answer (for DPO and preference accuracy)."""

    id: str
    prompt: str
    chosen: str
    rejected: str
    source: str = ""


def iter_jsonl(path: Path, problems: list[Problem]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line_number, row)` for each object row; record problems instead of raising.

    Blank lines are skipped. A file that is not UTF-8, not JSONL, or holds no rows adds a
    problem naming the file (and line) and yields what it can.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(f"cannot read file: {exc.strerror}", file=str(path)))
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(
            Problem(
                f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                "convert the file to UTF-8",
                file=str(path),
                line=line,
            )
        )
        return
    n_rows = 0
    # Lines end at "\n" only: JSON strings may hold U+2028, U+0085 and other characters that
    # `str.splitlines` also breaks on (gsm8k's train.jsonl row 2381 holds U+2028).
    for lineno, line_text in enumerate(text.split("\n"), start=1):
        line_text = line_text.removesuffix("\r")
        if not line_text.strip():
            continue
        try:
            row = json.loads(line_text)
        except json.JSONDecodeError as exc:
            problems.append(Problem(f"invalid JSON: {exc.msg}", file=str(path), line=lineno))
            continue
        if not isinstance(row, dict):
            problems.append(
                Problem(
                    f"expected a JSON object, got {type(row).__name__}",
                    file=str(path),
                    line=lineno,
                )
            )
            continue
        n_rows += 1
        yield lineno, row
    if n_rows == 0 and not any(p.file == str(path) for p in problems):
        problems.append(Problem("file holds no rows", file=str(path)))


def read_examples(
    path: Path,
    input_field: str,
    output_field: str | dict[str, str] | None,
    id_field: str | None,
    problems: list[Problem],
    labels: set[str] | None = None,
    *,
    input_template: str | None = None,
    single_output: bool = False,
) -> list[Example]:
    """Read examples from a JSONL file through a field mapping.

    The input is the `input_field`, or `input_template` filled from the row's fields
    (`"{instruction}\n{input}"`). `output_field` may name one field, or map output keys to
    fields (a JSON output assembled from several fields, e.g. `{intent: intent, slots: slots}`).
    With `labels`, an output not in the set is a problem at that line. With `single_output`
    (a training split: one target to learn), a list output becomes its first non-empty item, and
    an empty list (no answer: unanswerable) the abstention text, `contract.ABSTAIN_TEXT`.
    """
    examples: list[Example] = []
    for lineno, row in iter_jsonl(path, problems):
        where = {"file": str(path), "line": lineno}
        if input_template is not None:
            try:
                value: Any = input_template.format_map(_Row(row))
            except KeyError as exc:
                problems.append(
                    Problem(f"input_template names the field {exc}, which the row lacks", **where)  # type: ignore[arg-type]
                )
                continue
        else:
            value = row.get(input_field)
        if not isinstance(value, str) or not value.strip():
            what = f"input field '{input_field}'" if input_template is None else "input_template"
            found = "missing" if value is None else f"not a non-empty string ({value!r:.40})"
            problems.append(Problem(f"{what} {found}", **where))  # type: ignore[arg-type]
            continue
        output: Any = None
        if isinstance(output_field, str):
            if output_field not in row:
                problems.append(Problem(f"output field '{output_field}' missing", **where))  # type: ignore[arg-type]
                continue
            output = row[output_field]
        elif isinstance(output_field, dict):
            missing = [f for f in output_field.values() if f not in row]
            if missing:
                problems.append(Problem(f"output fields missing: {', '.join(missing)}", **where))  # type: ignore[arg-type]
                continue
            output = {key: row[f] for key, f in output_field.items()}
        if single_output and isinstance(output, list):
            kept = [o for o in output if not isinstance(o, str) or o.strip()]
            # No gold answer (SQuAD v2's unanswerable): the row teaches the one abstention.
            output = kept[0] if kept else ABSTAIN_TEXT
        if labels is not None and output not in labels:
            problems.append(
                Problem(f"unknown label {output!r} (not in the task's label set)", **where)  # type: ignore[arg-type]
            )
            continue
        ex_id = str(row[id_field]) if id_field and id_field in row else f"{path.stem}:{lineno}"
        meta = {k: v for k, v in row.items() if k not in {input_field, id_field}}
        examples.append(Example(ex_id, value, output, meta, f"{path}:{lineno}"))
    return examples


class _Row(dict[str, Any]):
    """A row for `str.format_map`: values as text, JSON for objects and lists."""

    def __getitem__(self, key: str) -> str:
        value = dict.__getitem__(self, key)
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def read_preferences(
    path: Path, fields: dict[str, str], id_field: str | None, problems: list[Problem]
) -> list[PreferencePair]:
    """Read prompt/chosen/rejected rows through a field mapping, problems at file:line."""
    pairs: list[PreferencePair] = []
    for lineno, row in iter_jsonl(path, problems):
        values = {}
        for role in ("prompt", "chosen", "rejected"):
            name = fields[role]
            value = row.get(name)
            if not isinstance(value, str) or not value.strip():
                problems.append(
                    Problem(f"{role} field '{name}' missing or empty", file=str(path), line=lineno)
                )
                break
            values[role] = value
        else:
            pair_id = (
                str(row[id_field]) if id_field and id_field in row else f"{path.stem}:{lineno}"
            )
            pairs.append(PreferencePair(pair_id, source=f"{path}:{lineno}", **values))
    return pairs


def sample_cases(
    cases: Sequence[Example], limit: int | None, seed: int = 0, stratify: bool = True
) -> list[Example]:
    """`limit` cases drawn with `seed`; proportional per label when `stratify`.

    >>> rows = [Example(str(i), f"t{i}", "ab"[i >= 50]) for i in range(100)]
    >>> sorted({e.output for e in sample_cases(rows, 10)})
    ['a', 'b']
    """
    cases = list(cases)
    if not stratify:
        return sample_items(cases, limit, seed)
    if limit is None or limit >= len(cases):
        return cases
    rng = random.Random(seed)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, case in enumerate(cases):
        groups[str(case.output)].append(i)
    for members in groups.values():
        rng.shuffle(members)
    # Largest-remainder allocation: every label gets its share, rounding fairly.
    quotas = {k: limit * len(v) / len(cases) for k, v in groups.items()}
    take = {k: int(q) for k, q in quotas.items()}
    spare = limit - sum(take.values())
    for k in sorted(quotas, key=lambda k: (take[k] - quotas[k], rng.random()))[:spare]:
        take[k] += 1
    chosen = sorted(i for k, members in groups.items() for i in members[: take[k]])
    return [cases[i] for i in chosen]


def sample_items(items: Sequence[T], limit: int | None, seed: int = 0) -> list[T]:
    """`limit` items drawn with `seed`, in their original order (all of them without a limit).

    >>> sample_items(list("abcdef"), 3, seed=1)
    ['a', 'b', 'e']
    """
    items = list(items)
    if limit is None or limit >= len(items):
        return items
    return sorted(random.Random(seed).sample(items, limit), key=items.index)


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write rows as JSONL through a temporary file, so a killed write leaves no torn file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    tmp.replace(path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL file this project wrote (blank lines skipped)."""
    from compoundai.errors import UserInputError

    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except OSError as exc:
        raise UserInputError(f"cannot read {path}: {exc.strerror}") from None
    return [json.loads(line) for line in lines if line.strip()]


def slug(text: str) -> str:
    """A short, safe folder-name form of a task name.

    >>> slug("Banking 77: intents!")
    'banking-77-intents'
    """
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "task"


# -- checks across rows ------------------------------------------------------------------------


def duplicate_ids(rows: Sequence[Example | PreferencePair], what: str) -> list[Problem]:
    """One problem per id given to more than one row (across every split): ids key the answer
    cache, the paired comparisons and the predictions file, so two rows must not share one.

    >>> rows = [Example("a", "x", source="t.jsonl:1"), Example("a", "y", source="t.jsonl:7")]
    >>> print(duplicate_ids(rows, "examples")[0].message)
    examples: id 'a' is used by 2 rows (t.jsonl:1, t.jsonl:7); give every row its own id
    """
    places: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        # one file:line read into two splits (a file given twice) is one row, not two
        if not row.source or row.source not in places[row.id]:
            places[row.id].append(row.source or "?")
    problems = []
    for row_id, where in places.items():
        if len(where) > 1:
            shown = ", ".join(where[:3]) + (
                f", and {len(where) - 3} more" if len(where) > 3 else ""
            )
            problems.append(
                Problem(
                    f"{what}: id {row_id!r} is used by {len(where)} rows ({shown}); "
                    "give every row its own id"
                )
            )
    return problems


def normalized_text(text: str) -> str:
    """The form inputs are compared in for leakage: case and runs of whitespace ignored."""
    return " ".join(text.lower().split())


def leaked_cases(train: Sequence[Example], held_out: Sequence[Example]) -> list[Example]:
    """The held-out cases whose input also occurs in `train` (identical up to case and
    whitespace): a model can look their answers up, so their scores say nothing.

    >>> [e.id for e in leaked_cases([Example("t", "Hi  there")], [Example("q", "hi there")])]
    ['q']
    """
    seen = {normalized_text(e.input) for e in train}
    return [e for e in held_out if normalized_text(e.input) in seen]
