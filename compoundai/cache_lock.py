"""One process at a time fills a folder of the shared cache: an inter-process lock beside it.

Why: the converted models, the RAG indexes and the adapters live in one cache that every
compoundai process of a user shares (two runs of different tasks, a run beside `serve`, the
test suite's two workers). Each reads "is this folder complete?" and, when it is not, fills it.
Two processes doing that at once both fill it: a second writer into one Chroma folder, two
trainers resuming one checkpoint, a model renamed over a copy another process is loading. So
the check and the filling happen under a lock file next to the folder (not inside it, so that
deleting the folder never deletes a lock someone holds). The lock is `filelock`'s, which
huggingface_hub and transformers use for their own caches; it is released when its holder
exits, even on `kill -9` (an OS lock on an open file, not a marker file).

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "index"
    >>> with filling(folder, "the index"):
    ...     folder.mkdir()
    >>> sorted(p.name for p in folder.parent.iterdir())
    ['index', 'index.lock']
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


def lock_path(folder: Path) -> Path:
    """The lock file of `folder`: beside it, `NAME.lock`."""
    return folder.with_name(folder.name + ".lock")


@contextmanager
def filling(folder: Path, what: str) -> Iterator[None]:
    """Hold `folder`'s lock for the block; says so on stderr when another process has it.

    Re-check inside the block whether the folder is complete: the process that held the lock
    before may have filled it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path(folder)))
    try:
        lock.acquire(timeout=1)
    except Timeout:
        print(
            f"waiting for another compoundai process to finish {what} ({folder})",
            file=sys.stderr,
        )
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
