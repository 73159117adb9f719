"""One error root, two branches: whose fault it was decides the exit code.

`UserInputError` means the user's input is wrong (a task file, a JSONL row, a CLI flag): the
CLI exits 2 and lists every problem, with file and line where there is one. `RunTimeFailure`
means something failed while running (a model would not load, a server went away): exit 1.
Only the CLI turns these into exit codes; library code raises and lets callers decide.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input, located as precisely as we can."""

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        if self.field:
            where = f"{where} [{self.field}]" if where else f"[{self.field}]"
        return f"{where}: {self.message}" if where else self.message


class CompoundAIError(Exception):
    """Root of every error compoundai raises on purpose."""

    exit_code = 1


class UserInputError(CompoundAIError):
    """The user's input is wrong; the message says what and how to fix it.

    >>> err = UserInputError([Problem("missing field 'name'", file="task.yaml", line=1)])
    >>> print(err)
    1 problem:
      task.yaml:1: missing field 'name'
    """

    exit_code = 2

    def __init__(self, problems: list[Problem] | str, hint: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems = list(problems)
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        if len(self.problems) == 1 and not self.problems[0].file and not self.problems[0].field:
            text = self.problems[0].message
        else:
            n = len(self.problems)
            lines = [f"{n} problem{'s' if n != 1 else ''}:"]
            lines += [f"  {p}" for p in self.problems]
            text = "\n".join(lines)
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


class RunTimeFailure(CompoundAIError):
    """Something failed while running: a model, a server, the disk. Not the user's input."""

    exit_code = 1


class LaneNotBuiltError(UserInputError):
    """A lane that this version cannot build yet was asked for by name."""


class LaneNotApplicableError(LaneNotBuiltError):
    """A lane that does not apply to this task (rag with nothing to retrieve from): the
    report says `not_applicable`, not `failed`."""


class ModelNotFoundError(UserInputError):
    """A model name or path that is neither cached, bundled, local, nor reachable."""
