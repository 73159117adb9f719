"""Runs and systems found under the UI's directories, read as untrusted input.

A run is a directory holding `report.json` (what `compoundai run` and `compare` write, with
`predictions.jsonl` beside it); a system is one holding `system.json` (`compoundai build`). The
directories are walked again on every listing (a few `stat` calls: a run that finishes shows
up on the next page load), a few levels deep, skipping what a run or a system keeps inside it
(answer caches, indexes, adapters, checkpoints). A report is parsed once per modification time.

Nothing found here may break a page: a directory that does not exist, a report that is not
JSON or not a report, a run without predictions, each becomes a message next to the rest.
Ids are the root's position and the path below it (`0/banking77`), so a page names a run
without naming a path on disk, and only directories found by the walk can be opened.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from compoundai_evaluators.report import Report

SKIP = {"cache", "checkpoints", "index", "adapter", "adapters", "node_modules", "__pycache__"}
MAX_DEPTH = 4


@dataclass
class RunEntry:
    """One run directory: its report, or why it could not be read."""

    id: str
    path: Path
    report: Report | None = None
    error: str | None = None
    mtime: float = 0.0

    @property
    def has_predictions(self) -> bool:
        return (self.path / "predictions.jsonl").is_file()

    @property
    def task(self) -> str:
        return self.report.task if self.report else ""

    @property
    def outcome(self) -> str | None:
        """The decision check's outcome: matched, tied, wrong, or None (not checkable)."""
        if self.report is None:
            return None
        check = self.report.decision_check
        if check is None and self.report.verdict is not None:
            check = self.report.verdict.decision_check
        if check is not None:
            return check.outcome
        return {True: "matched", False: "wrong", None: None}[self.report.router_correct]

    @property
    def wall_seconds(self) -> float:
        """Build plus answering time over the lanes (they run one after another)."""
        if self.report is None:
            return 0.0
        return sum(
            lane.cost.get("build_seconds", 0.0) + lane.cost.get("eval_seconds", 0.0)
            for lane in self.report.lanes
        )


@dataclass
class SystemEntry:
    """One built system directory (`system.json`), for the playground."""

    id: str
    path: Path
    name: str = ""
    lane: str = ""
    error: str | None = None


@dataclass
class Scan:
    runs: list[RunEntry] = field(default_factory=list)
    systems: list[SystemEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # a missing root, an unreadable folder


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"not a compoundai report: {where}: {errors[0]['msg'] if errors else exc}{more}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    return str(exc).split("\n")[0]


class RunStore:
    """The runs and systems under `roots`, walked on each `scan()`.

    >>> store = RunStore([Path("out")])            # doctest: +SKIP
    >>> [r.task for r in store.scan().runs]        # doctest: +SKIP
    ['banking77-intents']
    """

    def __init__(self, roots: Sequence[str | Path]) -> None:
        self.roots = [Path(r).expanduser() for r in roots]
        self._reports: dict[Path, tuple[int, int, Report | None, str | None]] = {}

    def scan(self) -> Scan:
        scan = Scan()
        for i, root in enumerate(self.roots):
            if not root.exists():
                scan.problems.append(f"{root} does not exist")
                continue
            if not root.is_dir():
                scan.problems.append(f"{root} is not a directory")
                continue
            self._walk(i, root, root, 0, scan)
        scan.runs.sort(key=lambda r: r.mtime, reverse=True)
        return scan

    def _walk(self, index: int, root: Path, folder: Path, depth: int, scan: Scan) -> None:
        rel = folder.relative_to(root).as_posix()
        entry_id = str(index) if rel == "." else f"{index}/{rel}"
        if (folder / "report.json").is_file():
            scan.runs.append(self._run(entry_id, folder))
            return
        if (folder / "system.json").is_file():
            scan.systems.append(_system(entry_id, folder))
            return
        if depth >= MAX_DEPTH:
            return
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir())
        except OSError as exc:
            scan.problems.append(f"cannot list {folder}: {exc.strerror or exc}")
            return
        for child in children:
            if child.name in SKIP or child.name.startswith("."):
                continue
            self._walk(index, root, child, depth + 1, scan)

    def _run(self, entry_id: str, folder: Path) -> RunEntry:
        file = folder / "report.json"
        try:
            stat = file.stat()
        except OSError as exc:
            return RunEntry(entry_id, folder, error=f"cannot read report.json: {exc}")
        cached = self._reports.get(file)
        if cached is None or cached[:2] != (stat.st_mtime_ns, stat.st_size):
            report, error = None, None
            try:
                report = Report.model_validate_json(file.read_bytes())
            except ValidationError as exc:
                # `model_validate_json` reports broken JSON as a validation error too
                try:
                    json.loads(file.read_bytes())
                except json.JSONDecodeError as bad:
                    error = _first_line(bad)
                else:
                    error = _first_line(exc)
            except (OSError, ValueError) as exc:
                error = _first_line(exc)
            cached = (stat.st_mtime_ns, stat.st_size, report, error)
            self._reports[file] = cached
        return RunEntry(entry_id, folder, cached[2], cached[3], stat.st_mtime)

    def find_run(self, run_id: str) -> RunEntry | None:
        return next((r for r in self.scan().runs if r.id == run_id), None)

    def find_system(self, system_id: str) -> SystemEntry | None:
        return next((s for s in self.scan().systems if s.id == system_id), None)


def _system(entry_id: str, folder: Path) -> SystemEntry:
    try:
        data: Any = json.loads((folder / "system.json").read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("system.json is not an object")
        return SystemEntry(entry_id, folder, str(data.get("name", "")), str(data.get("lane", "")))
    except (OSError, ValueError) as exc:
        return SystemEntry(entry_id, folder, folder.name, error=_first_line(exc))


@dataclass
class Prediction:
    """One row of predictions.jsonl: one lane's answer to one case."""

    lane: str
    id: str
    input: str
    reference: Any
    output: Any
    text: str
    latency_ms: float
    extra: dict[str, Any]


def read_predictions(folder: Path) -> tuple[list[Prediction], list[str]]:
    """Every row of `folder/predictions.jsonl`, and what was wrong with the rows left out.

    >>> rows, problems = read_predictions(Path("out/banking77"))  # doctest: +SKIP
    """
    file = folder / "predictions.jsonl"
    if not file.is_file():
        return [], ["this run has no predictions.jsonl, so its answers cannot be shown"]
    rows: list[Prediction] = []
    bad = 0
    with file.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                extra = row.get("extra") or {}
                rows.append(
                    Prediction(
                        lane=str(row["lane"]),
                        id=str(row["id"]),
                        input=str(row.get("input", "")),
                        reference=row.get("reference"),
                        output=row.get("output"),
                        text=str(row.get("text", "")),
                        latency_ms=float(row.get("latency_ms") or 0.0),
                        extra=extra if isinstance(extra, dict) else {},
                    )
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                bad += 1
    problems = (
        [f"{bad} rows of predictions.jsonl could not be read and are left out"] if bad else []
    )
    return rows, problems


def task_files(base: Path, limit: int = 50) -> list[str]:
    """Task files near `base` (`task.yaml` up to two folders down), for the start form."""
    found: list[str] = []
    for pattern in ("task.yaml", "*/task.yaml", "*/*/task.yaml"):
        for path in sorted(base.glob(pattern)):
            parts = path.relative_to(base).parts[:-1]
            if not any(part in SKIP or part.startswith(".") for part in parts):
                found.append(os.path.relpath(path, base))
    return found[:limit]
