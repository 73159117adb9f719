"""Drive headless Chromium through pages: navigate, click, type, choose, wait, screenshot.

Built on `tests/evaluators/browser.py` (the same flags, DevTools session and error collection),
with what a click-through needs on top: real mouse clicks at an element's centre
(`Input.dispatchMouseEvent`), typing (`Input.insertText`), waiting for a load that a click
started, waiting for a condition, and the URL of every request the page made. Host names do
not resolve (`--host-resolver-rules`), so anything a page tries to fetch from outside the
machine fails and shows up in `errors`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.evaluators.browser import _errors, _Session, devtools_port, launch, shut_down

NO_NETWORK = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


class Browser:
    """One headless Chromium with one page.

    >>> with Browser(find_chromium()) as b:      # doctest: +SKIP
    ...     b.goto("http://127.0.0.1:8765/")
    ...     b.click("a.run-link")
    """

    def __init__(self, chromium: str, width: int = 1280, height: int = 820) -> None:
        self.chromium, self.width, self.height = chromium, width, height
        self._profile = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._stack = contextlib.ExitStack()
        self.session: _Session

    def __enter__(self) -> Browser:
        self._profile = tempfile.mkdtemp(prefix="chromium-")
        try:
            self._proc = launch(self.chromium, self._profile, *NO_NETWORK)
            self._connect()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _connect(self) -> None:
        assert self._proc is not None
        port = devtools_port(self._proc, self._profile)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            target = next(t for t in json.load(r) if t.get("type") == "page")
        from websockets.sync.client import connect

        ws = self._stack.enter_context(
            connect(target["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024)
        )
        self.session = _Session(ws)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.session.call(f"{domain}.enable")
        self.session.call(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()
        shut_down(self._proc, self._profile)

    # -- what a person does ----------------------------------------------------------------

    def goto(self, url: str) -> None:
        mark = len(self.session.events)
        self.session.call("Page.navigate", url=url)
        self._wait_event("Page.loadEventFired", mark)

    def click(self, selector: str, *, navigates: bool = True, timeout: float = 30) -> None:
        """A real mouse click at the element's centre; wait for the page it opens."""
        box = self.eval(
            f"""(() => {{
              const el = document.querySelector({json.dumps(selector)});
              if (!el) return null;
              el.scrollIntoView({{block: 'center'}});
              const r = el.getBoundingClientRect();
              return {{x: r.left + r.width / 2, y: r.top + r.height / 2}};
            }})()"""
        )
        if box is None:
            raise AssertionError(f"nothing matches {selector!r} on {self.eval('location.href')}")
        mark = len(self.session.events)
        for kind in ("mousePressed", "mouseReleased"):
            self.session.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box["x"],
                y=box["y"],
                button="left",
                clickCount=1,
            )
        if navigates:
            self._wait_event("Page.loadEventFired", mark, timeout)

    def type(self, selector: str, text: str) -> None:
        """Focus a field, clear it, and type `text` as keyboard input."""
        self.eval(
            f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
              el.focus(); el.value = ''; }})()"""
        )
        self.session.call("Input.insertText", text=text)

    def choose(self, selector: str, value: str) -> None:
        """Pick an option of a <select>, as a person's choice fires `change`."""
        ok = self.eval(
            f"""(() => {{ const el = document.querySelector({json.dumps(selector)});
              if (!el || ![...el.options].some(o => o.value === {json.dumps(value)})) return false;
              el.value = {json.dumps(value)};
              el.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()"""
        )
        if not ok:
            raise AssertionError(f"{selector!r} has no option {value!r}")

    # -- what a test reads -----------------------------------------------------------------

    def eval(self, expression: str, timeout: float = 30) -> Any:
        result = self.session.call(
            "Runtime.evaluate",
            timeout=timeout,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def text(self, selector: str) -> str:
        return str(self.eval(f"document.querySelector({json.dumps(selector)})?.textContent ?? ''"))

    def count(self, selector: str) -> int:
        return int(self.eval(f"document.querySelectorAll({json.dumps(selector)}).length"))

    def wait_until(self, expression: str, timeout: float = 60, every: float = 0.25) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} stayed false for {timeout} s")
            self.session.drain(every)

    def screenshot(self, path: Path | None = None) -> bytes:
        shot = self.session.call("Page.captureScreenshot", format="png")
        data = base64.b64decode(shot["data"])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return data

    @property
    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed requests on every page so far (a
        request the page itself cancelled, such as a closed event stream, is not a failure)."""
        events = [
            ev
            for ev in self.session.events
            if not (ev.get("method") == "Network.loadingFailed" and ev["params"].get("canceled"))
        ]
        return _errors(events)

    @property
    def requests(self) -> list[str]:
        return [
            ev["params"]["request"]["url"]
            for ev in self.session.events
            if ev.get("method") == "Network.requestWillBeSent"
        ]

    def _wait_event(self, name: str, mark: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(ev.get("method") == name for ev in self.session.events[mark:]):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(name)
            try:
                self.session.events.append(json.loads(self.session.ws.recv(timeout=left)))
            except TimeoutError:
                continue
