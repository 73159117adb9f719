"""`RunContext`: what a run needs from its surroundings, passed explicitly.

No module-level clients or settings: every function that needs the cache directory, the seed,
the device or a client takes a `RunContext`. Tests build their own with a temporary cache and
fake clients; the CLI builds one from flags and environment variables. Two dictionaries, kept
apart on purpose: `clients` is what the caller injected (read-only to the lanes), `loaded` the
run's own cache of models it loaded, keyed by model name, so asking for another model never
returns the one loaded first.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def default_cache_dir() -> Path:
    """`$COMPOUNDAI_CACHE`, else `$XDG_CACHE_HOME/compoundai`, else `~/.cache/compoundai`."""
    if env := os.environ.get("COMPOUNDAI_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "compoundai"


@dataclass
class RunContext:
    """Cache dir, seed, device, progress switch and injected clients for one run.

    >>> ctx = RunContext(cache_dir=Path("/tmp/c"), seed=1)
    >>> ctx.models_dir
    PosixPath('/tmp/c/models')
    """

    cache_dir: Path = field(default_factory=default_cache_dir)
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    # Injected by the caller, keyed by role ("generator", "embedder", "openai"): tests put
    # fakes here, applications pre-built clients. An injected client replaces whatever model
    # the task names for that role. Lanes read this; they never write into it.
    clients: dict[str, Any] = field(default_factory=dict)
    # Models loaded during this run, keyed by what they are (`("embedder", name)`), so lanes
    # that need the same model share one copy (`shared`).
    loaded: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False)

    def shared(self, key: tuple[str, ...], load: Callable[[], T]) -> T:
        """The model `key` names, loaded once per run by `load` and shared after that.

        >>> ctx = RunContext()
        >>> ctx.shared(("embedder", "x"), list) is ctx.shared(("embedder", "x"), list)
        True
        """
        if key not in self.loaded:
            self.loaded[key] = load()
        return self.loaded[key]

    def release_idle(self, role: str) -> list[tuple[str, ...]]:
        """Forget the loaded `role` models nothing but this context still holds, so their
        memory can go back before a training run loads its own copy (a later `shared` loads
        them again). A model a built system still uses is kept: dropping only this reference
        would leave it alive and make the next `shared` load a second copy.

        >>> ctx = RunContext()
        >>> ctx.shared(("generator", "a"), dict) is not None
        True
        >>> held = ctx.shared(("generator", "b"), dict)
        >>> ctx.release_idle("generator"), list(ctx.loaded)
        ([('generator', 'a')], [('generator', 'b')])
        """
        import gc
        import sys

        gc.collect()  # a finished lane's system may still hold it in a cycle not yet freed
        # two references when only the dict holds it: its entry and getrefcount's argument
        idle = [k for k in self.loaded if k[0] == role and sys.getrefcount(self.loaded[k]) <= 2]
        for key in idle:
            del self.loaded[key]
        return idle

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    def resolve_device(self) -> str:
        """`auto` becomes `cuda` when a GPU is visible, else `cpu` (imports torch lazily)."""
        if self.device != "auto":
            return self.device
        try:
            import torch
        except ImportError:
            return "cpu"
        return "cuda" if torch.cuda.is_available() else "cpu"

    def rng(self, salt: str = "") -> random.Random:
        """A private RNG derived from the seed, so parts of a run do not share a stream."""
        return random.Random(f"{self.seed}:{salt}")
