"""`compoundai serve` at its edges: hostile bodies, DNS rebinding, the schema route, clients that
leave or crawl, and the model name the docs promise (real uvicorn on 127.0.0.1, fake systems)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time

import httpx
import pytest

from compoundai.contract import OutputContract
from compoundai.serve import ServeSettings, create_app, load_systems, serve_in_thread
from compoundai.system import CompoundSystem
from compoundai.system_dir import save_system
from compoundai.testing import FakeGenerator
from tests.conftest import ROOT
from tests.test_serve import CountingGenerator

KEY = "edge-key-123"
JSON = {"Content-Type": "application/json"}


def echo_system(ctx, delay: float = 0.0) -> CompoundSystem:
    return CompoundSystem(
        "echo", "prompt", "Repeat.", OutputContract(), CountingGenerator(delay), ctx=ctx
    )


@pytest.fixture
def open_server(fake_ctx):
    """A server with no key on 127.0.0.1 (the default a local user runs)."""
    system = echo_system(fake_ctx)
    with serve_in_thread(create_app({"echo": system}, ServeSettings())) as url:
        yield url, system


def chat(text: str = "hello") -> dict:
    return {"model": "echo", "messages": [{"role": "user", "content": text}]}


def test_a_deeply_nested_body_is_400_not_500(open_server):
    url, _ = open_server
    body = b"[" * 200_000 + b"]" * 200_000
    r = httpx.post(url + "/chat/completions", content=body, headers=JSON)
    assert r.status_code == 400, r.text
    assert "nested too deeply" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ('{"model": "echo", "messages": [{"role": "user", "content": "a\\ud800b"}]}', "messages"),
        (
            '{"model": "echo", "messages": [{"role": "user", "content": '
            '[{"type": "text", "text": "\\udfff"}]}]}',
            "messages",
        ),
        (
            '{"model": "echo", "messages": [{"role": "user", "content": "hi"}], '
            '"stop": ["\\ud83d"]}',
            "stop",
        ),
    ],
)
def test_a_lone_surrogate_is_400_not_500(open_server, raw, param):
    url, _ = open_server
    r = httpx.post(url + "/chat/completions", content=raw.encode(), headers=JSON)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and "surrogate" in r.json()["error"]["message"]


def test_dns_rebinding_foreign_host_and_simple_posts_are_refused(open_server):
    url, system = open_server
    port = url.split(":")[2].split("/")[0]
    body = json.dumps(chat("rebound")).encode()
    # what a page on evil.example can send once its name resolves to 127.0.0.1
    r = httpx.post(
        url + "/chat/completions",
        content=body,
        headers={"Host": f"evil.example:{port}", "Content-Type": "text/plain"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_host"
    r = httpx.get(url + "/models", headers={"Host": "evil.example"})
    assert r.status_code == 400
    # a simple (no-preflight) cross-origin POST: text/plain, the right Host
    r = httpx.post(url + "/chat/completions", content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    assert not any("rebound" in str(c) for c in system.generator.calls)
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "[::1]"):
        r = httpx.post(url + "/chat/completions", content=body, headers={**JSON, "Host": host})
        assert r.status_code == 200, (host, r.text)


def test_the_schema_route_is_not_served(fake_ctx):
    settings = ServeSettings(api_key=KEY)
    with serve_in_thread(create_app({"echo": echo_system(fake_ctx)}, settings)) as url:
        root = url.removesuffix("/v1")
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert httpx.get(root + path).status_code == 404, path
        auth = {"Authorization": f"Bearer {KEY}"}
        assert httpx.get(root + "/openapi.json", headers=auth).status_code == 404


def test_a_client_that_leaves_has_its_request_cancelled(fake_ctx):
    """A's request occupies the worker; B's waits behind it, then B hangs up. B's input must
    never reach the generator."""
    system = echo_system(fake_ctx, delay=1.5)
    app = create_app({"echo": system}, ServeSettings(max_batch=1))
    with serve_in_thread(app) as url:
        host, port = url.split("//")[1].split("/")[0].split(":")
        first = threading.Thread(
            target=lambda: httpx.post(url + "/chat/completions", json=chat("A"), timeout=30)
        )
        first.start()
        time.sleep(0.3)  # A is being answered
        body = json.dumps({**chat("B leaves"), "stream": True}).encode()
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            time.sleep(0.3)  # B is queued
        first.join()
        time.sleep(2.0)  # long enough for B to have been answered, had it stayed queued
        seen = [chat[-1]["content"] for chat in system.generator.calls]
        assert seen == ["A"]
        assert app.state.batchers["echo"].answered == 1


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_slow_headers_are_cut_off(fake_ctx):
    settings = ServeSettings(header_timeout_s=0.5)
    with serve_in_thread(create_app({"echo": echo_system(fake_ctx)}, settings)) as url:
        host, port = url.split("//")[1].split("/")[0].split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            assert _closed_within(sock, 3.0)  # not held open by a client that never finishes
        with socket.create_connection((host, int(port))) as idle:  # sends nothing at all
            assert _closed_within(idle, 3.0)


def test_a_slow_body_is_408(fake_ctx):
    settings = ServeSettings(body_timeout_s=0.5)
    with serve_in_thread(create_app({"echo": echo_system(fake_ctx)}, settings)) as url:
        host, port = url.split("//")[1].split("/")[0].split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model"'
            )
            sock.settimeout(3.0)
            reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]


def test_the_documented_model_name_is_the_served_one(fake_ctx, tmp_path):
    """README and docs/serving.md call the server with model="NAME": each such NAME is given to
    `compoundai serve` as NAME=DIR in the same page; and without NAME= the served name is the
    system's own (its lane variant), as `compoundai serve` prints it."""
    for page in (ROOT / "README.md", ROOT / "docs" / "serving.md"):
        text = page.read_text()
        served = set(re.findall(r"compoundai serve (?:[^\n]* )?([\w.-]+)=\S+", text))
        called = set(re.findall(r'model="([^"]+)"', text))
        assert called and called <= served, (page.name, called, served)
    system = CompoundSystem(
        "prompt/5-shot", "prompt", "Say.", OutputContract(), FakeGenerator(default="hi")
    )
    folder = save_system(system, tmp_path / "sys")
    gen = FakeGenerator(default="hi")
    assert list(load_systems([str(folder)], fake_ctx, generator=gen)) == ["prompt/5-shot"]
    assert list(load_systems([f"banking77={folder}"], fake_ctx, generator=gen)) == ["banking77"]
