"""Copying model and adapter folders into a system directory, and path containment.

Why a module of its own: a system directory is untrusted input and a place other code copies
into (`compoundai.system_dir`, the web UI's output folders), so what may be copied (JSON, text
and safetensors, never pickles) and what counts as inside a folder are decided in one place.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from compoundai.errors import RunTimeFailure

SAFE_SUFFIXES = {".json", ".jsonl", ".safetensors", ".txt", ".md", ".jinja"}


def is_inside(path: Path, root: Path) -> bool:
    """Whether `path` resolves to `root` or somewhere below it."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def copy_safe(source: Path, dest: Path) -> None:
    """Copy a model or adapter folder, JSON/text/safetensors files only (no pickles)."""
    if not source.is_dir():
        raise RunTimeFailure(f"cannot copy {source} into the system: not a directory")
    for file in sorted(source.rglob("*")):
        rel = file.relative_to(source)
        if not file.is_file() or rel.parts[0] in {"checkpoints"} or file.name.startswith("."):
            continue
        if file.suffix.lower() not in SAFE_SUFFIXES:
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, dest / rel)
