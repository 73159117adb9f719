"""Fixtures for the index tests: a small corpus on disk, and a real Chroma server.

Every index test runs twice, against embedded Chroma (`PersistentClient` in a temp folder) and
against a `chroma run` server this session starts on 127.0.0.1 (a free port, stopped at the
end), so "works on a server as well" is tested, not assumed. Tests on the server use their own
collection name, so they never see each other's data.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from compoundai.context import RunContext
from compoundai.testing import HashEmbedder
from compoundai_retrievers.index import ChromaIndex

FACTS = {
    "paris.md": "# Paris\n\nParis is the capital of France. The Seine flows through Paris.\n",
    "berlin.txt": "Berlin is the capital of Germany. The Spree flows through Berlin.\n",
    "rome.html": "<html><head><title>Rome</title><style>p{}</style></head>"
    "<body><h1>Rome</h1><p>Rome is the capital of Italy. The Tiber flows through it.</p>"
    "</body></html>",
    "cities.jsonl": '{"id": "madrid", "title": "Madrid", '
    '"text": "Madrid is the capital of Spain."}\n'
    '{"id": "lisbon", "title": "Lisbon", "text": "Lisbon is the capital of Portugal.", '
    '"lang": "en"}\n',
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server (`chroma run`) on 127.0.0.1, for the whole session."""
    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.exists():
        pytest.skip("the chroma CLI is not installed beside this Python")
    port = free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log = open(data / "server.log", "wb")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen(
        [
            str(chroma),
            "run",
            "--path",
            str(data / "db"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"chroma server did not start: {(data / 'server.log').read_text()}"
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    return RunContext(cache_dir=tmp_path / "cache", progress=False)


@pytest.fixture(params=["embedded", "server"])
def open_index(
    request: pytest.FixtureRequest, tmp_path: Path, ctx: RunContext
) -> Callable[..., ChromaIndex]:
    """Open the test's index (same folder or same server collection on every call)."""
    collection = f"t-{uuid.uuid4().hex[:12]}"
    server = request.getfixturevalue("chroma_server") if request.param == "server" else None
    folder = None if server else tmp_path / "index"

    def opener(embedder: object | None = None, **kw: object) -> ChromaIndex:
        emb = HashEmbedder() if embedder is None else embedder
        return ChromaIndex.open(
            folder,
            server=server,
            collection=collection,
            embedder=emb,
            ctx=ctx,
            **kw,  # type: ignore[arg-type]
        )

    opener.location = {"server": server, "folder": folder, "collection": collection}  # type: ignore[attr-defined]
    return opener


def write_corpus(root: Path, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (files or FACTS).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def many_files(root: Path, n: int, version: str = "v1") -> Path:
    """`n` small distinct Markdown files (enough for several ingestion batches)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = f"# Note {i}\n\nNote {i} {version} says item {i * 7} is stored in bin {i % 13}.\n"
        (root / f"note_{i:03d}.md").write_text(body)
    return root


def index_snapshot(index: ChromaIndex) -> dict[str, tuple[str, str]]:
    """id -> (source, text) of every record: two indexes are equal when these are."""
    got = index.collection.get(include=["metadatas", "documents"])
    return {
        rid: (str(meta["source"]), str(doc))
        for rid, meta, doc in zip(got["ids"], got["metadatas"], got["documents"], strict=True)
    }


os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
