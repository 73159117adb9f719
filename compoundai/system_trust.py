"""What a system directory may point at: checked before anything in it is loaded or called.

A system directory is untrusted input (copied from anywhere, edited by hand), and `system.json`
names things the loader would otherwise open or call: an adapter, a base model, the
demonstrations, the rag index's records, a model by name, an OpenAI-compatible server. So,
before any of them is touched, `check_system_dir` refuses (a `UserInputError` naming the
field, exit 2):

- a path that is absolute or leaves the directory, after resolving `..` and symlinks, for the
  file itself and for every entry under a folder it names (a symlink inside `adapter/` that
  points out is an escape too);
- weights that are not safetensors (`adapter_model.safetensors`, `model.safetensors` or a
  sharded safetensors index): the loaders are called with `use_safetensors=True` and never fall
  back to a pickled `.bin`;
- a model or embedder named by a path outside the system directory and the model store (a
  bundled name, a Hugging Face id, `hash:N` and `openai:MODEL` are names, not paths);
- a server the user did not allow: a system's inputs and `OPENAI_API_KEY` go only to a base
  URL given with `--allow-remote URL` (`allow_remote=`), listed in `COMPOUNDAI_ALLOW_REMOTE`
  (comma-separated), or set by the user as `OPENAI_BASE_URL`.

    >>> url_allowed("http://127.0.0.1:8080/v1/", ["http://127.0.0.1:8080/v1"])
    True
    >>> url_allowed("https://evil.example/v1", ["http://127.0.0.1:8080/v1"])
    False
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from compoundai.context import RunContext
from compoundai.errors import Problem, UserInputError

if TYPE_CHECKING:
    from compoundai.system_dir import SystemFile

ALLOW_REMOTE_ENV = "COMPOUNDAI_ALLOW_REMOTE"
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
ADAPTER_WEIGHTS = ("adapter_model.safetensors",)
MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
# Names that are not paths: a Hugging Face id `org/name`, the fake `hash:N`, `openai:MODEL`.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
_HASH = re.compile(r"hash(?:-embedder)?[:-]\d+|hash")
_HINT = "the system directory is damaged or was edited; build it again"


# -- paths ---------------------------------------------------------------------------------


def confined(folder: Path, relative: str, field: str, *, kind: str = "file") -> Path:
    """`folder / relative`, resolved, if it stays inside `folder` and is a `kind` (file or
    folder); a folder's every entry must stay inside too. Else a user error naming `field`.

    >>> confined(Path("/tmp"), "../etc/passwd", "demos.file")  # doctest: +SKIP
    UserInputError: [demos.file]: '../etc/passwd' points outside the system directory
    """
    root = folder.resolve()
    if not relative or Path(relative).is_absolute():
        raise _refused(field, f"{relative!r} is not a path inside the system directory")
    try:
        path = (folder / relative).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        raise _refused(field, f"{relative!r} is a symlink loop") from None
    if not _within(path, root):
        raise _refused(field, f"{relative!r} points outside the system directory ({path})")
    if kind == "folder":
        if not path.is_dir():
            raise _refused(field, f"{relative!r} is not a folder in the system directory")
        for entry in sorted(path.rglob("*")):
            try:
                inside = _within(entry.resolve(), root)
            except (OSError, RuntimeError):  # a symlink loop
                inside = False
            if not inside:
                rel = entry.relative_to(path)
                raise _refused(field, f"{relative}/{rel} is a link outside the system directory")
    elif not path.is_file():
        raise _refused(field, f"{relative!r} is not a file in the system directory")
    return path


def require_safetensors(folder: Path, names: Sequence[str], field: str) -> None:
    """Refuse a weights folder without safetensors weights (a `.bin` is never loaded)."""
    if not any((folder / name).is_file() for name in names):
        pickled = sorted(p.name for p in folder.glob("*.bin")) + sorted(
            p.name for p in folder.glob("*.pt")
        )
        found = f" (found {', '.join(pickled)}: pickles are never loaded)" if pickled else ""
        raise _refused(field, f"{folder.name}/ has no {' or '.join(names)}{found}")


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _refused(field: str, message: str) -> UserInputError:
    return UserInputError([Problem(message, field=field)], hint=_HINT)


# -- model and embedder names ----------------------------------------------------------------


def check_model_name(name: str, field: str, ctx: RunContext) -> None:
    """A model the system names outside itself must be a name, not a path: a bundled model,
    one in the model store, or a Hugging Face id that is not also a local path."""
    from compoundai.models import BUNDLED

    if name in BUNDLED:
        return
    path = Path(name).expanduser()
    if path.is_absolute() and _within(path.resolve(), ctx.models_dir.resolve()):
        return
    if _HUB_ID.fullmatch(name) and ".." not in name.split("/") and not path.exists():
        return
    raise _refused(
        field,
        f"{name!r} is a path outside the system directory and the model store; a saved system "
        "carries its own base model (base_model/) or names a bundled model or hub id",
    )


def check_embedder_name(name: str, field: str, ctx: RunContext, allowed: Sequence[str]) -> None:
    """Embedders by name: `hash:N`, `openai:MODEL` (only to an allowed server), or a model."""
    if _HASH.fullmatch(name):
        return
    if name.startswith("openai:"):
        check_remote(None, field, allowed)
        return
    check_model_name(name, field, ctx)


# -- servers ---------------------------------------------------------------------------------


def allowed_remotes(given: Iterable[str] = ()) -> list[str]:
    """The base URLs a loaded system may send inputs and keys to: `given` (the command line),
    `COMPOUNDAI_ALLOW_REMOTE` (comma-separated) and `OPENAI_BASE_URL` (the user's own)."""
    urls = [*given, *os.environ.get(ALLOW_REMOTE_ENV, "").split(",")]
    if os.environ.get("OPENAI_BASE_URL"):
        urls.append(os.environ["OPENAI_BASE_URL"])
    return [u.strip() for u in urls if u.strip()]


def normalize_url(url: str) -> str:
    """scheme://host:port/path, lower-cased host, default port spelled out, no trailing '/'."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = None
    host = (parts.hostname or "").lower()
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}"


def url_allowed(url: str, allowed: Sequence[str]) -> bool:
    """Is `url` one of `allowed`? An allowed origin without a path allows all its paths."""
    target = normalize_url(url)
    for entry in allowed:
        norm = normalize_url(entry)
        origin_only = not urlsplit(entry.strip()).path.strip("/")
        if target == norm or (origin_only and target.startswith(norm + "/")):
            return True
    return False


def check_remote(base_url: str | None, field: str, allowed: Sequence[str]) -> None:
    """Refuse to send a system's inputs (and `OPENAI_API_KEY`) to a server not allowed."""
    url = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_URL
    if url_allowed(url, allowed):
        return
    raise UserInputError(
        [
            Problem(
                f"this system would send its inputs and OPENAI_API_KEY to {url}, "
                "a server you have not allowed",
                field=field,
            )
        ],
        hint=f"if you trust it: compoundai serve --allow-remote {url} ... "
        f"(or {ALLOW_REMOTE_ENV}={url}); from Python: load_system(..., allow_remote=[url])",
    )


# -- the whole directory -------------------------------------------------------------------


def check_system_dir(
    folder: Path,
    saved: SystemFile,
    ctx: RunContext,
    *,
    allow_remote: Sequence[str] = (),
    generator_given: bool = False,
) -> None:
    """Everything `saved` points at, checked before any of it is opened (module docstring)."""
    allowed = allowed_remotes(allow_remote)
    ref = saved.generator
    if ref.adapter:
        adapter = confined(folder, ref.adapter, "generator.adapter", kind="folder")
        require_safetensors(adapter, ADAPTER_WEIGHTS, "generator.adapter")
    if ref.model_in_system:
        model = confined(folder, ref.model, "generator.model", kind="folder")
        require_safetensors(model, MODEL_WEIGHTS, "generator.model")
    if not generator_given:
        if ref.backend == "local" and not ref.model_in_system:
            check_model_name(ref.model, "generator.model", ctx)
        if ref.backend == "openai":
            check_remote(ref.base_url, "generator.base_url", allowed)
    embedder_given = "embedder" in ctx.clients
    if saved.demos is not None:
        confined(folder, saved.demos.file, "demos.file")
        if not embedder_given:
            check_embedder_name(saved.demos.embedder, "demos.embedder", ctx, allowed)
    if saved.stuffed is not None:
        confined(folder, saved.stuffed.passages, "stuffed.passages")
    if saved.rag is not None:
        index = saved.rag.index
        confined(folder, index.records, "rag.index.records")
        confined(folder, index.embeddings, "rag.index.embeddings")
        if not embedder_given:
            check_embedder_name(index.embedder, "rag.index.embedder", ctx, allowed)
