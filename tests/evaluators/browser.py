"""Load a page in headless Chromium over the DevTools protocol: console errors, DOM facts, PNG.

Just enough CDP for the report test, with the `websockets` sync client: start Chromium with
`--remote-debugging-port=0`, read the port it chose from `DevToolsActivePort`, open a page
target, enable the Runtime and Log domains, navigate, wait for the load event, then collect
every console error, uncaught exception and failed request, evaluate a JavaScript expression
and capture a full-page screenshot. Network is off by flags, so a page that needs the network
fails loudly here.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


@dataclass
class PageLoad:
    errors: list[str] = field(default_factory=list)
    value: Any = None
    screenshot: bytes = b""


class _Session:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))
            self.events.append(msg)
        raise TimeoutError(method)

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.events.append(json.loads(self.ws.recv(timeout=left)))
            except TimeoutError:
                return

    def wait_for(self, event: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(event)
            self.events.append(json.loads(self.ws.recv(timeout=deadline - time.monotonic())))


def _errors(events: list[dict[str, Any]]) -> list[str]:
    found = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            found.append("exception: " + json.dumps(params.get("exceptionDetails", {}))[:300])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append("console: " + json.dumps(params.get("args", []))[:300])
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            found.append("log: " + params["entry"].get("text", "")[:300])
        elif method == "Network.loadingFailed":
            found.append("request failed: " + params.get("errorText", ""))
    return found


def _visit(session: _Session, page: Path, expression: str, width: int) -> PageLoad:
    for domain in ("Page", "Runtime", "Log", "Network"):
        session.call(f"{domain}.enable")
    session.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=900,
        deviceScaleFactor=1,
        mobile=False,
    )
    session.call("Page.navigate", url=page.resolve().as_uri())
    session.wait_for("Page.loadEventFired")
    result = session.call("Runtime.evaluate", expression=expression, returnByValue=True)
    shot = session.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    session.drain(0.3)  # late console messages
    return PageLoad(
        errors=_errors(session.events),
        value=result.get("result", {}).get("value"),
        screenshot=base64.b64decode(shot["data"]),
    )


def launch(chromium: str, profile: str, *flags: str) -> subprocess.Popen[bytes]:
    """Start headless Chromium on `profile`, in a process group of its own (see `shut_down`)."""
    return subprocess.Popen(
        [chromium, *FLAGS, *flags, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def devtools_port(proc: subprocess.Popen[bytes], profile: str) -> int:
    """The DevTools port Chromium writes into its profile once it listens."""
    port_file = Path(profile) / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while not (port_file.is_file() and port_file.read_text().strip()):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("chromium did not start its DevTools endpoint")
        time.sleep(0.1)
    return int(port_file.read_text().split()[0])


def shut_down(proc: subprocess.Popen[bytes] | None, profile: str) -> None:
    """Stop Chromium and every process it started, then delete its profile.

    Its helpers (renderer, crash handler) can outlive the main process and go on writing into
    the profile: a CI run failed in the profile's cleanup with `Directory not empty: 'Default'`.
    So the whole process group is stopped, and the delete is retried briefly.
    """
    if proc is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # helpers still up, or a hung browser
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for _ in range(20):
        try:
            shutil.rmtree(profile)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    shutil.rmtree(profile, ignore_errors=True)


def load_page(chromium: str, page: Path, expression: str, width: int = 1100) -> PageLoad:
    """Open `page`, evaluate `expression` after load, screenshot the full page."""
    profile = tempfile.mkdtemp(prefix="chromium-")
    proc = None
    try:
        proc = launch(chromium, profile)
        port = devtools_port(proc, profile)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        target = next(t for t in targets if t.get("type") == "page")
        from websockets.sync.client import connect

        url = target["webSocketDebuggerUrl"]
        with connect(url, max_size=64 * 1024 * 1024, open_timeout=20) as ws:
            return _visit(_Session(ws), page, expression, width)
    finally:
        shut_down(proc, profile)
