"""What this machine can do fast, asked once by generation, embedding and training alike.

Why a leaf of its own: the generator, the embedder and the training stack all pick bf16 on
CPUs with AMX / AVX-512 bf16 (measured ~2x fp32 for generation and embedding, ~7x for bf16
matmul on this project's CPU), and all load PEFT adapters; each used to import the others'
modules for it (a cycle between the core and the training stack). Nothing here imports torch
or PEFT at import time.

    >>> isinstance(cpu_has_bf16(), bool)
    True
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def cpu_has_bf16() -> bool:
    """True when the CPU advertises native bf16 matmul (AMX or AVX-512 bf16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def pick_dtype(device: str, requested: str = "auto") -> Any:
    """The torch dtype to run a model in: bf16 where the device does it natively."""
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc `malloc_trim`).

    Called between lanes: a lane's model and activations are freed when its turn ends, but
    without this the process keeps the pages, and a run that builds lanes one after another
    grows by every lane's leftovers (benchmarks/README.md, "Memory of make run")."""
    import ctypes
    import gc
    from contextlib import suppress

    gc.collect()
    with suppress(OSError, AttributeError):  # not glibc (macOS, musl): collection alone
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextmanager
def loading_bars(show: bool) -> Iterator[None]:
    """transformers' "Loading weights" bars on or off while a model loads (`--no-progress`)."""
    if show:
        yield
        return
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


@contextmanager
def quiet_peft() -> Iterator[None]:
    """Hide the FutureWarning PEFT triggers by asking transformers 5 through a deprecated
    alias (`is_gradient_checkpointing`): users cannot act on it."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
        )
        yield
