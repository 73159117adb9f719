"""Runs started from the UI: a child process each, its progress streamed, cancellable.

Why a child process and not a thread: a run loads models, trains adapters and may take an
hour; a process can be stopped at any point (SIGTERM to its process group, SIGKILL after a
grace period) without the run's code checking a flag, and its stderr carries exactly the
progress the CLI shows (`building <lane>`, tqdm's bars), which is what the page streams. What a
cancelled run finished stays usable: answers are cached in OUT_DIR/cache as they are made and
adapters checkpoint as they train, so starting it again resumes.

The child is `python -m compoundai.ui.worker` (`worker.py`), which calls `run_task`. Tests and
applications that inject clients (a fake generator) name a `module:function` that turns the
worker's `RunContext` into theirs (`context_factory`); it runs inside the child.

`ProgressLog` replays the raw stream (carriage returns, tqdm's cursor moves) as a terminal
would, so the page shows what the CLI user sees: one line per bar, updated in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from compoundai.context import RunContext
from compoundai.errors import UserInputError
from compoundai.safe_files import is_inside

ESCAPE = re.compile(r"\x1b\[(\d*)(?:;[\d;]*)?\??([A-Za-z])")
TOKEN = re.compile(r"\x1b\[[\d;?]*[A-Za-z]|\r|\n|\x1b|[^\x1b\r\n]+")
PARTIAL_ESCAPE = re.compile(r"\x1b(\[[\d;?]*)?$")
MAX_LINES = 400
GRACE_S = 10.0


class ProgressLog:
    r"""The child's stderr as a terminal shows it (see the module docstring).

    A tiny terminal: text overwrites the line at the cursor, `\r` returns to its start, `\n`
    moves down, `ESC[nA` / `ESC[nB` move up and down (tqdm's nested bars), `ESC[K` clears to the
    end of the line; other escapes are dropped. So a bar redraws its own line, a bar closed with
    `leave=False` is blanked and left out, and `tqdm.write` lines stay above the bars.

    >>> log = ProgressLog()
    >>> log.feed("building rag\nscore:  10%|#  | 1/10\rscore:  90%|#########| 9/10\r")
    >>> log.lines()
    ['building rag', 'score:  90%|#########| 9/10']
    """

    def __init__(self) -> None:
        self._screen: list[str] = [""]
        self._row = self._col = 0
        self._pending = ""  # an escape sequence cut in two by a read
        self.version = 0
        self._lock = threading.Lock()

    def feed(self, text: str) -> None:
        with self._lock:
            text, self._pending = self._pending + text, ""
            if cut := PARTIAL_ESCAPE.search(text):
                text, self._pending = text[: cut.start()], text[cut.start() :]
            for token in TOKEN.findall(text):
                self._apply(token)
            if len(self._screen) > MAX_LINES:
                drop = len(self._screen) - MAX_LINES
                self._screen, self._row = self._screen[drop:], max(self._row - drop, 0)
            self.version += 1

    def _apply(self, token: str) -> None:
        if token == "\r":
            self._col = 0
        elif token == "\n":
            self._row, self._col = self._row + 1, 0
        elif token.startswith("\x1b"):
            if (move := ESCAPE.fullmatch(token)) is not None:
                count, code = int(move.group(1) or 1), move.group(2)
                if code == "A":
                    self._row = max(self._row - count, 0)
                elif code == "B":
                    self._row += count
                elif code == "K":
                    self._line_at(self._row)
                    self._screen[self._row] = self._screen[self._row][: self._col]
        else:
            line = self._line_at(self._row).ljust(self._col)
            self._screen[self._row] = line[: self._col] + token + line[self._col + len(token) :]
            self._col += len(token)

    def _line_at(self, row: int) -> str:
        while len(self._screen) <= row:
            self._screen.append("")
        return self._screen[row]

    def lines(self) -> list[str]:
        """The screen's lines that are not blank, top to bottom."""
        with self._lock:
            return [line.rstrip() for line in self._screen if line.strip()]


@dataclass
class JobRequest:
    """What the start form asks for; paths already resolved and checked by `JobManager`."""

    task_file: Path
    out_dir: Path
    lanes: list[str]
    limit: int | None = None


@dataclass
class Job:
    id: str
    request: JobRequest
    state: str = "starting"  # starting | running | finished | failed | cancelled
    started: float = field(default_factory=time.time)
    finished: float | None = None
    returncode: int | None = None
    message: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    log: ProgressLog = field(default_factory=ProgressLog)
    proc: subprocess.Popen[bytes] | None = None
    cancel_requested: bool = False

    @property
    def done(self) -> bool:
        return self.state in ("finished", "failed", "cancelled")

    def snapshot(self) -> dict[str, Any]:
        end = self.finished or time.time()
        return {
            "id": self.id,
            "state": self.state,
            "task_file": str(self.request.task_file),
            "out_dir": str(self.request.out_dir),
            "lanes": self.request.lanes,
            "limit": self.request.limit,
            "elapsed_s": round(end - self.started, 1),
            "returncode": self.returncode,
            "message": self.message,
            "result": self.result,
            "lines": self.log.lines(),
            "version": self.log.version,
        }


class JobManager:
    """Starts worker processes and keeps their state; at most `max_running` at once.

    >>> jobs = JobManager(RunContext())                                      # doctest: +SKIP
    >>> job = jobs.start(JobRequest(Path("t.yaml"), Path("out/x"), ["prompt"]))  # doctest: +SKIP
    """

    def __init__(
        self,
        ctx: RunContext,
        *,
        context_factory: str | None = None,
        max_running: int = 1,
        python: str = sys.executable,
    ) -> None:
        self.ctx = ctx
        self.context_factory = context_factory
        self.max_running = max_running
        self.python = python
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def command(self, request: JobRequest) -> list[str]:
        cmd = [self.python, "-m", "compoundai.ui.worker", str(request.task_file)]
        cmd += ["--out", str(request.out_dir), "--lanes", ",".join(request.lanes)]
        if request.limit:
            cmd += ["--limit", str(request.limit)]
        cmd += ["--cache-dir", str(self.ctx.cache_dir), "--seed", str(self.ctx.seed)]
        cmd += ["--device", self.ctx.device]
        if self.context_factory:
            cmd += ["--context", self.context_factory]
        return cmd

    def start(self, request: JobRequest) -> Job:
        with self._lock:
            running = [j for j in self.jobs.values() if not j.done]
            if len(running) >= self.max_running:
                raise UserInputError(
                    f"a run is already in progress ({running[0].request.task_file})",
                    hint="wait for it to finish or cancel it",
                )
            job = Job(uuid.uuid4().hex[:12], request)
            self.jobs[job.id] = job
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_MININTERVAL": "0.5"}
        job.proc = subprocess.Popen(
            self.command(request),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: cancel stops its children too
        )
        job.state = "running"
        threading.Thread(target=self._follow, args=(job,), daemon=True).start()
        return job

    def _follow(self, job: Job) -> None:
        proc = job.proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        out: list[bytes] = []
        stdout = proc.stdout
        reader = threading.Thread(target=lambda: out.append(stdout.read()), daemon=True)
        reader.start()
        decoder = _Utf8()
        while chunk := os.read(proc.stderr.fileno(), 4096):
            job.log.feed(decoder.decode(chunk))
        code = proc.wait()
        reader.join(timeout=5)
        job.returncode = code
        job.result = _last_json(b"".join(out))
        job.finished = time.time()
        if job.cancel_requested:
            job.state, job.message = "cancelled", "cancelled; what it finished is cached"
        elif code == 0:
            job.state = "finished"
            job.message = f"finished: winner {job.result.get('winner') or 'none'}"
        else:
            job.state = "failed"
            job.message = str(job.result.get("error") or f"the run exited with code {code}")
        job.log.version += 1

    def cancel(self, job_id: str) -> Job:
        job = self.jobs[job_id]
        if job.done or job.proc is None:
            return job
        job.cancel_requested = True
        _stop(job.proc)
        return job

    def close(self) -> None:
        """Stop every running job (the server is going away)."""
        for job in list(self.jobs.values()):
            if not job.done and job.proc is not None:
                job.cancel_requested = True
                _stop(job.proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    def signal_group(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    signal_group(signal.SIGTERM)

    def escalate() -> None:
        try:
            proc.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            signal_group(signal.SIGKILL)

    threading.Thread(target=escalate, daemon=True).start()


class _Utf8:
    """Incremental UTF-8 decoding (a progress bar's block characters span reads)."""

    def __init__(self) -> None:
        import codecs

        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def decode(self, data: bytes) -> str:
        return str(self._decoder.decode(data))


def _last_json(data: bytes) -> dict[str, Any]:
    for line in reversed(data.decode("utf-8", errors="replace").splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


def lane_choices() -> Sequence[str]:
    from compoundai.router import LANES

    return tuple(LANES)


def job_request(body: Any, base_dir: Path, runs_dir: Path, roots: Sequence[Path]) -> JobRequest:
    """The start form's JSON, checked: the task file loads, the lanes exist, the folder is new
    or a run's own, and lies under one of the UI's directories (so the run shows up there)."""
    if not isinstance(body, dict):
        raise UserInputError("the request must be a JSON object")
    raw = str(body.get("task_file") or "").strip()
    if not raw:
        raise UserInputError("choose a task file")
    task_file = (base_dir / raw).resolve()
    from compoundai.task import load_task

    task = load_task(task_file)  # every problem of the file, before anything starts
    lanes = [str(x) for x in body.get("lanes") or []]
    choices = lane_choices()
    unknown = [x for x in lanes if x not in choices]
    if not lanes or unknown:
        raise UserInputError(f"choose lanes among {', '.join(choices)}")
    limit = body.get("limit")
    if limit in (None, ""):
        limit = None
    else:
        try:
            limit = int(limit)
        except (TypeError, ValueError):
            raise UserInputError("the limit must be a whole number") from None
        if limit < 1:
            raise UserInputError("the limit must be at least 1")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    given = str(body.get("out_dir") or "").strip()
    out = (base_dir / given).resolve() if given else (runs_dir / f"{task.name}-{stamp}").resolve()
    if not any(is_inside(out, root) for root in [runs_dir, *roots]):
        raise UserInputError(
            f"{out} is outside the UI's directories, so the run would not show up",
            hint=f"choose a folder under {runs_dir}",
        )
    if out.exists() and any(out.iterdir()) and not (out / "report.json").is_file():
        raise UserInputError(f"{out} is not empty and holds no run; choose a new folder")
    return JobRequest(task_file, out, lanes, limit)
