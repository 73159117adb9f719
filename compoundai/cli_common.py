"""Helpers every CLI module shares: errors to exit codes, and the `RunContext` from the flags.

Kept apart from `cli.py` so command groups in their own modules (`cli_train.py`, ...) can
import them without importing the root group they are registered on.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from compoundai.context import RunContext
from compoundai.errors import CompoundAIError

F = TypeVar("F", bound=Callable[..., Any])


def _errors_to_exit_codes(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CompoundAIError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            if os.environ.get("COMPOUNDAI_DEBUG"):
                traceback.print_exc()
            click.echo(
                f"error: unexpected failure: {type(exc).__name__}: {exc}\n"
                "(set COMPOUNDAI_DEBUG=1 for the traceback)",
                err=True,
            )
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _ctx(obj: dict[str, Any]) -> RunContext:
    return RunContext(
        cache_dir=obj["cache_dir"], seed=obj["seed"], device=obj["device"], progress=obj["progress"]
    )
