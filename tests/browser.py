"""Headless Chromium driven over the DevTools protocol on a pipe: real rendering, no dependency.

Why this and not Selenium or Playwright: ``--remote-debugging-pipe`` makes Chromium read
protocol commands from its file descriptor 3 and answer on 4, NUL-separated JSON, so a few dozen
lines of the standard library drive it. Nothing is installed from PyPI, no driver binary has to
match the browser's version (chromedriver must), no browser is downloaded (Playwright's install
step needs the internet), and no port is opened. The protocol also reports every request the
page makes, which is how a test proves that a page loads nothing from the network.

The network is refused twice over: every host resolves to nothing, and every connection goes to
a proxy on a closed port; file:// URLs are untouched.

Example::

    with Browser() as browser:
        browser.open(Path("out/index.html").resolve().as_uri())
        browser.evaluate("document.title")
        png = browser.screenshot()
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None
)
"""The Chromium executable, or None (Debian: apt-get install chromium)."""

FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests may run as root, which Chromium's sandbox refuses
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    # The network, refused: no name resolves, and every connection would go to a closed port.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)
DEADLINE = 60.0  # seconds: a safety net for a wedged browser, never a measurement


_TRAMPOLINE = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


def _above_four(fd: int) -> int:
    """``fd`` moved to a number above 4 (the old one closed)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5)
    os.close(fd)
    return moved


class BrowserError(Exception):
    """The browser answered a command with an error, or stopped answering."""


class Browser:
    """One headless Chromium and one page in it, driven over the DevTools protocol."""

    def __init__(self, executable: str | None = CHROMIUM) -> None:
        if executable is None:
            raise BrowserError("no Chromium found: apt-get install chromium")
        self.executable = executable
        self.events: list[dict[str, Any]] = []
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None

    def __enter__(self) -> Browser:
        self._profile = tempfile.mkdtemp(prefix="reve-remix-chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # Chromium reads fd 3 and writes fd 4. A Python trampoline puts the pipes there (a shell's
        # `3<&12` fails in dash, whose fd numbers have one digit), from numbers above 4 so that
        # the first dup2 cannot overwrite the other pipe.
        to_browser_read, from_browser_write = (
            _above_four(to_browser_read),
            _above_four(from_browser_write),
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _TRAMPOLINE,
                str(to_browser_read),
                str(from_browser_write),
                self.executable,
                *FLAGS,
                f"--user-data-dir={self._profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            pass_fds=(to_browser_read, from_browser_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            attached = self.call("Target.attachToTarget", targetId=target, flatten=True)
            self._session = attached["sessionId"]
            for domain in ("Page", "Network", "Runtime"):
                self.call(f"{domain}.enable")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._session = None
            self.call("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self.process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self._profile, ignore_errors=True)

    # --- the protocol ---------------------------------------------------------------------------

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command; its result (events that arrive meanwhile go to ``events``)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._receive()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            self.events.append(answer)

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise BrowserError("the browser did not answer")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError("the browser closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        value: dict[str, Any] = json.loads(message)
        return value

    def _wait_event(self, method: str) -> dict[str, Any]:
        seen = len(self.events)
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method:
                    return event
            seen = len(self.events)
            self.events.append(self._receive())

    # --- what the tests use ---------------------------------------------------------------------

    def open(self, url: str, *, width: int = 1280, height: int = 900) -> None:
        """Load ``url`` at ``width`` x ``height`` and wait for its load event."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.events.clear()
        self.call("Page.navigate", url=url)
        self._wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def requested(self) -> list[str]:
        """Every URL the page asked for since it was opened."""
        return [
            event["params"]["request"]["url"]
            for event in self.events
            if event.get("method") == "Network.requestWillBeSent"
        ]

    def images_loaded(self) -> list[dict[str, Any]]:
        """Every ``<img>`` of the page that is displayed, once each has loaded or failed.

        The viewport is first made as tall as the page, so that lazy images load too.
        """
        height = self.evaluate("document.documentElement.scrollHeight")
        width = self.evaluate("window.innerWidth")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=max(height, 1),
            deviceScaleFactor=1,
            mobile=False,
        )
        images: list[dict[str, Any]] = self.evaluate(
            """Promise.all([...document.images].filter(i => i.getClientRects().length).map(
                 i => i.decode().then(() => true, () => false).then(decoded => ({
                   src: i.getAttribute('src'), alt: i.getAttribute('alt'), decoded,
                   width: i.naturalWidth, height: i.naturalHeight}))))"""
        )
        return images

    def screenshot(self, path: Path | None = None, *, full_page: bool = True) -> bytes:
        """A PNG of the page (all of it, or the viewport), also written to ``path`` if given."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])
        if path is not None:
            path.write_bytes(data)
        return data

    def press(self, key: str, code: str, key_code: int) -> None:
        """Press and release a key in the page (to the focused element)."""
        for kind in ("keyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=code,
                windowsVirtualKeyCode=key_code,
            )
