"""Loading systems to serve, and running the app: the CLI's uvicorn, or a thread for tests."""

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from compoundai.errors import UserInputError
from compoundai.system import CompoundSystem


def load_systems(
    specs: Sequence[str],
    ctx: Any = None,
    *,
    generator: Any = None,
    allow_remote: Sequence[str] = (),
) -> dict[str, CompoundSystem]:
    """`DIR` or `NAME=DIR` → {model name: loaded system}. The name defaults to the system's
    (its lane variant, e.g. `prompt/5-shot`). `allow_remote`: the base URLs a system may send
    its inputs to (see `compoundai.system_trust`)."""
    from compoundai.system_dir import load_system

    systems: dict[str, CompoundSystem] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep:
            name, folder = "", spec
        system = load_system(Path(folder), ctx, generator=generator, allow_remote=allow_remote)
        name = name or system.name
        if name in systems:
            raise UserInputError(
                f"two systems are named {name!r}",
                hint="name them apart with NAME=DIR, e.g. banking-ft=out/ft",
            )
        systems[name] = system
    return systems


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Run `app` with uvicorn in a background thread; yield its base URL (…/v1); stop it after.

    For tests and benchmarks:

    >>> with serve_in_thread(create_app(systems)) as base_url:        # doctest: +SKIP
    ...     OpenAI(base_url=base_url, api_key=key).models.list()
    """
    import uvicorn

    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the test server did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
