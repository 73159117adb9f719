"""Where things came from, as numbers anyone can recompute: library versions and hashes.

Why one module: the versions a report, a system directory and an adapter manifest record, the
content hash of a data file and the digest of a JSON value (cache keys, fingerprints, index
keys) were each written two to four times, slightly differently. A digest that differs by the
module computing it is a cache that silently misses; now there is one of each.

    >>> json_digest({"b": 1, "a": [1, 2]}) == json_digest({"a": [1, 2], "b": 1})
    True
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

# What a report records (the runtime of the answers) and what an adapter records (training).
RUNTIME_DISTS = ("compoundai", "torch", "transformers", "sentence-transformers", "openai")
TRAINING_DISTS = ("compoundai", "torch", "transformers", "peft", "accelerate")


def versions(dists: Sequence[str] = RUNTIME_DISTS) -> dict[str, str]:
    """Python's version and those of the installed distributions among `dists`."""
    found = {"python": platform.python_version()}
    for dist in dists:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def json_digest(value: Any) -> str:
    """The SHA-256 of a value's canonical JSON (sorted keys; non-JSON values by `str`)."""
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
