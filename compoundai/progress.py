"""One progress bar for long work, the same everywhere: tqdm on stderr, gone when done.

It exists so that ingestion, index repair, question synthesis and the rest show the same kind
of bar and all obey `--no-progress` (`enabled=False`), without each module carrying its own
tqdm set-up. A leaf module (it imports nothing of compoundai), so the retrievers can use it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def bar(
    items: Iterable[Any] | None = None,
    *,
    desc: str,
    unit: str,
    total: int | None = None,
    enabled: bool = True,
) -> Any:
    """A tqdm bar over `items` (or, with `items=None`, one to `update(n)` by hand)."""
    from tqdm.auto import tqdm

    return tqdm(
        items, total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled, leave=False
    )
