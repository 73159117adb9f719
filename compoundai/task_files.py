"""Reading the files a task names: labels, schema, documents, examples and preference pairs.

Why apart from `compoundai.task`: the task file's model says what may be written; this is what
is read, and where it goes wrong for a new user: folders of documents (read recursively, as the
index reads them), JSONL documents whose text sits in another field (`document_fields`), input
templates over several fields, training rows whose answer is a list (one target is learnt: the
first; held-out rows keep every reference). Every problem is collected with its file and line;
`compoundai.task.load_task` has the data of the sections that did validate read even when others
did not, so a user fixes schema and data problems in one pass.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compoundai.data import Example, PreferencePair, iter_jsonl, read_examples, read_preferences
from compoundai.errors import Problem

if TYPE_CHECKING:
    from compoundai.task import Task

SPLITS = ("train", "dev", "test")


def read_task_files(task: Task, problems: list[Problem]) -> None:
    """Read every file the task names into it; problems are appended, never raised."""
    base = task.path.parent
    _load_contract(task, base, problems)
    _load_documents(task, base, problems)
    _load_examples(task, base, problems)
    _load_preferences(task, base, problems)


def document_loader(task: Task) -> Any:
    """How the index, the profile and the stuffed prompt read this task's documents."""
    from compoundai_retrievers.loaders import LoaderConfig

    fields = task.spec.document_fields
    return LoaderConfig(text_field=fields.text, id_fields=list(fields.id), title_field=fields.title)


def _resolve(base: Path, pattern: str, problems: list[Problem], what: str) -> list[Path]:
    full = pattern if Path(pattern).is_absolute() else str(base / pattern)
    matches = sorted(Path(p) for p in glob.glob(full, recursive=True))
    if not matches:
        problems.append(Problem(f"{what} not found: {pattern} (looked in {base})"))
    return matches


def _split_files(base: Path, patterns: list[str], problems: list[Problem], what: str) -> list[Path]:
    """The files a split's patterns name (`what`: `examples.train`, `preferences.dev`...)."""
    return [p for pattern in patterns for p in _resolve(base, pattern, problems, f"{what} file")]


def _load_contract(task: Task, base: Path, problems: list[Problem]) -> None:
    contract = task.spec.output
    if contract.type == "labels":
        labels: Any = contract.labels
        if labels is None:
            problems.append(Problem("output.type is 'labels' but output.labels is not set"))
            return
        if isinstance(labels, str):
            paths = _resolve(base, labels, problems, "label file")
            if not paths:
                return
            try:
                labels = json.loads(paths[0].read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                problems.append(
                    Problem(f"label file is not a JSON list: {exc}", file=str(paths[0]))
                )
                return
        if (
            not isinstance(labels, list)
            or not labels
            or not all(isinstance(x, str) for x in labels)
        ):
            problems.append(Problem("output.labels must be a non-empty list of strings"))
            return
        if len(set(labels)) != len(labels):
            problems.append(Problem("output.labels has duplicates"))
        task.labels = list(labels)
    elif contract.type == "json_schema":
        schema: Any = contract.schema_
        if schema is None:
            problems.append(Problem("output.type is 'json_schema' but output.schema is not set"))
            return
        if isinstance(schema, str):
            paths = _resolve(base, schema, problems, "schema file")
            if not paths:
                return
            try:
                schema = json.loads(paths[0].read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                problems.append(Problem(f"schema file is not JSON: {exc}", file=str(paths[0])))
                return
        if not isinstance(schema, dict):
            problems.append(Problem("output.schema must be a JSON object"))
            return
        task.json_schema = schema


def _load_documents(task: Task, base: Path, problems: list[Problem]) -> None:
    """Files, globs and folders (read recursively, as the index reads them: known suffixes,
    hidden entries skipped); JSONL documents must hold the text field `document_fields` names."""
    from compoundai_retrievers.loaders import KNOWN_SUFFIXES

    found: dict[Path, None] = {}
    for pattern in task.spec.documents:
        for path in _resolve(base, pattern, problems, "documents"):
            if path.is_dir():
                for child in sorted(path.rglob("*")):
                    hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                    if child.is_file() and not hidden and child.suffix.lower() in KNOWN_SUFFIXES:
                        found[child] = None
            elif path.is_file():
                found[path] = None
    task.documents = list(found)
    if task.spec.documents and not task.documents and not problems:
        problems.append(
            Problem(
                "documents: nothing readable under "
                + ", ".join(task.spec.documents)
                + f" (files with {', '.join(sorted(KNOWN_SUFFIXES))})"
            )
        )
    fields = task.spec.document_fields
    for path in task.documents:
        if path.suffix.lower() == ".jsonl":
            _check_document_rows(path, fields.text, problems)


def _check_document_rows(path: Path, text_field: str, problems: list[Problem]) -> None:
    """Every JSONL document row has the text field (the first missing one is reported)."""
    rows: list[Problem] = []
    for lineno, row in iter_jsonl(path, rows):
        value = row.get(text_field)
        if not isinstance(value, str) or not value.strip():
            present = ", ".join(sorted(k for k, v in row.items() if isinstance(v, str))[:8])
            problems.append(
                Problem(
                    f"a JSONL document row has no text in the field {text_field!r} (set "
                    f"document_fields.text to the field that holds it; this row's text fields: "
                    f"{present or 'none'})",
                    file=str(path),
                    line=lineno,
                )
            )
            return
    problems += rows


def _load_examples(task: Task, base: Path, problems: list[Problem]) -> None:
    data = task.spec.examples
    if data is None:
        return
    labels = set(task.labels) if task.labels else None
    for split in SPLITS:
        rows: list[Example] = []
        for p in _split_files(base, getattr(data, split), problems, f"examples.{split}"):
            rows += read_examples(
                p,
                data.input_field,
                data.output_field,
                data.id_field,
                problems,
                labels,
                input_template=data.input_template,
                # a training row teaches one answer; held-out references may be several
                single_output=split == "train" and task.spec.output.type == "free_text",
            )
        if rows:
            task.examples[split] = rows


def _load_preferences(task: Task, base: Path, problems: list[Problem]) -> None:
    data = task.spec.preferences
    if data is None:
        return
    fields = {
        "prompt": data.prompt_field,
        "chosen": data.chosen_field,
        "rejected": data.rejected_field,
    }
    for split in SPLITS:
        pairs: list[PreferencePair] = []
        for p in _split_files(base, getattr(data, split), problems, f"preferences.{split}"):
            pairs += read_preferences(p, fields, data.id_field, problems)
        if pairs:
            task.preferences[split] = pairs
