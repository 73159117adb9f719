"""The child process of a run started from the UI: `run_task`, progress on stderr, a result line.

    python -m compoundai.ui.worker TASK.yaml --out OUT_DIR [--lanes prompt,rag] [--limit N]
        [--cache-dir DIR] [--seed N] [--device auto] [--context MODULE:FUNCTION]

The progress is the CLI's (lane builds and tqdm bars on stderr). The last line on stdout is
one JSON object: `{"ok": true, "out": ..., "winner": ...}`, or `{"ok": false, "error": ...}`;
the exit code is the CLI's (0, 2 for a user error, 1 for a failure at run time).
`--context module:function` names a function that takes the worker's `RunContext` and returns
the one to run with (injected clients, e.g. a fake generator in tests).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from compoundai.context import RunContext, default_cache_dir
from compoundai.errors import CompoundAIError, UserInputError


def _factory(spec: str) -> Callable[[RunContext], RunContext]:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise UserInputError(f"--context must be MODULE:FUNCTION, not {spec!r}")
    try:
        found: Any = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise UserInputError(f"cannot load the context factory {spec}: {exc}") from None
    return found


def _say(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compoundai.ui.worker")
    parser.add_argument("task_file", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--lanes", default="")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--context", default=None)
    args = parser.parse_args(argv)
    try:
        ctx = RunContext(
            cache_dir=args.cache_dir or default_cache_dir(),
            seed=args.seed,
            device=args.device,
            progress=True,
        )
        if args.context:
            ctx = _factory(args.context)(ctx)
        from compoundai.run import run_task

        lanes = [name.strip() for name in args.lanes.split(",") if name.strip()] or None
        print(f"run {args.task_file} -> {args.out}", file=sys.stderr, flush=True)
        report = run_task(args.task_file, args.out, lanes=lanes, limit=args.limit, ctx=ctx)
    except CompoundAIError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        _say({"ok": False, "error": str(exc).split("\n")[0], "exit_code": exc.exit_code})
        return exc.exit_code
    except Exception as exc:  # reported to the page; the traceback stays in the log
        import traceback

        traceback.print_exc()
        _say({"ok": False, "error": f"unexpected failure: {type(exc).__name__}: {exc}"})
        return 1
    print(f"done: winner {report.winner}", file=sys.stderr, flush=True)
    _say({"ok": True, "out": str(args.out), "winner": report.winner, "task": report.task})
    return 0


if __name__ == "__main__":
    sys.exit(main())
