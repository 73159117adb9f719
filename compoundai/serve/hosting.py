"""Loading systems to serve, and running the app: the CLI's uvicorn, or a thread for tests."""

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from compoundai.errors import UserInputError
from compoundai.serve.protocol import ServeSettings, is_loopback
from compoundai.system import CompoundSystem

__all__ = ["free_port", "is_loopback", "load_systems", "serve_in_thread", "uvicorn_options"]


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


def uvicorn_options(settings: ServeSettings) -> dict[str, Any]:
    """uvicorn settings that bound what slow or many clients hold: the keep-alive timeout, a
    deadline for each request's line and headers (`header_timeout_s`; uvicorn has none of its
    own, so a client that sends its headers a byte at a time would hold the connection
    forever), and at most `max_connections` connections and requests (503 beyond)."""
    return {
        "http": header_timeout_protocol(settings.header_timeout_s),
        "timeout_keep_alive": settings.keep_alive_s,
        "limit_concurrency": settings.max_connections,
    }


def header_timeout_protocol(timeout_s: float) -> type:
    """uvicorn's HTTP protocol (httptools where installed, else h11), closing a connection whose
    next request has not sent its headers `timeout_s` after the connection opened or the last
    response ended."""
    base: type
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # pragma: no cover - httptools is part of uvicorn[standard]
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

    class HeaderTimeoutProtocol(base):
        _deadline: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(timeout_s, self._expire, self.cycle)

        def _expire(self, cycle: Any) -> None:
            # no request has begun since the deadline was set: its headers are too slow
            if self.cycle is cycle and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(
    app: Any,
    host: str = "127.0.0.1",
    port: int | None = None,
    settings: ServeSettings | None = None,
) -> Iterator[str]:
    """Run `app` with uvicorn in a background thread; yield its base URL (…/v1); stop it after.

    For tests and benchmarks:

    >>> with serve_in_thread(create_app(systems)) as base_url:        # doctest: +SKIP
    ...     OpenAI(base_url=base_url, api_key=key).models.list()
    """
    import uvicorn

    port = port or free_port(host)
    settings = settings or getattr(app.state, "settings", None) or ServeSettings()
    options = uvicorn_options(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", **options)
    )
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
