"""A real headless Chromium driven over the DevTools protocol: open a page, list the requests
it made and those that failed, time its load, read its text, take a screenshot. Started once
per test session (conftest)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import websocket

INSTALL = "run `make test` (or apt-get install chromium (Debian) or chromium-browser (Ubuntu))"


@dataclass
class PageVisit:
    """What a page did when it was opened."""

    requests: list[str] = field(default_factory=list)  # URL of each request, the page's first
    failed: list[str] = field(default_factory=list)  # URL: error of each failed request
    console_errors: list[str] = field(default_factory=list)
    text: str = ""
    load_ms: float = 0.0  # navigation start to the end of the load event, as the page timed it
    screenshot: bytes = b""


class Browser:
    """One Chromium process bound to 127.0.0.1; stop() ends it by its PID."""

    def __init__(self) -> None:
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if not binary:
            raise RuntimeError(f"Chromium is not installed: {INSTALL}")
        self.profile = tempfile.TemporaryDirectory(prefix="chromium-")
        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        self._ids = iter(range(1, 1 << 30))

    def visit(self, url: str, width: int = 1200, height: int = 1600,
              full_page: bool = False) -> PageVisit:
        """Open `url` in a new tab, wait for its load, and report what happened; the screenshot
        is of the window, or of the whole page (`full_page`)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank",
                                         method="PUT")
        with urllib.request.urlopen(request, timeout=10) as answer:
            target = json.load(answer)
        ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=60)
        visit, requests = PageVisit(), {}
        try:
            for method in ("Network.enable", "Page.enable", "Runtime.enable", "Log.enable"):
                self._call(ws, method, {}, visit, requests)
            self._call(ws, "Emulation.setDeviceMetricsOverride",
                       {"width": width, "height": height, "deviceScaleFactor": 1,
                        "mobile": False}, visit, requests)
            self._call(ws, "Page.navigate", {"url": url}, visit, requests)
            self._wait_for(ws, "Page.loadEventFired", visit, requests)
            text = self._call(ws, "Runtime.evaluate",
                              {"expression": "document.body.innerText", "returnByValue": True},
                              visit, requests)
            visit.text = text["result"]["value"]
            timing = self._call(ws, "Runtime.evaluate", {
                "expression": "performance.getEntriesByType('navigation')[0].loadEventEnd",
                "returnByValue": True}, visit, requests)
            visit.load_ms = float(timing["result"]["value"])
            capture = {"format": "png"}
            if full_page:  # the page's whole height, up to 20,000 pixels
                size = self._call(ws, "Page.getLayoutMetrics", {}, visit, requests)
                capture.update(captureBeyondViewport=True, clip={
                    "x": 0, "y": 0, "width": width, "scale": 1,
                    "height": min(size["cssContentSize"]["height"], 20_000)})
            shot = self._call(ws, "Page.captureScreenshot", capture, visit, requests)
            visit.screenshot = base64.b64decode(shot["data"])
        finally:
            ws.close()
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/close/{target['id']}",
                                   timeout=10).close()
        return visit

    def _call(self, ws, method: str, params: dict, visit: PageVisit, requests: dict) -> dict:
        ident = next(self._ids)
        ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self._record(message, visit, requests)

    def _wait_for(self, ws, event: str, visit: PageVisit, requests: dict) -> None:
        while True:
            message = json.loads(ws.recv())
            self._record(message, visit, requests)
            if message.get("method") == event:
                return

    @staticmethod
    def _record(message: dict, visit: PageVisit, requests: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            requests[params["requestId"]] = params["request"]["url"]
            visit.requests.append(params["request"]["url"][:120])
        elif method == "Network.loadingFailed":
            url = requests.get(params["requestId"], "?")
            visit.failed.append(f"{url[:120]}: {params.get('errorText')}")
        elif method == "Network.responseReceived" and params["response"].get("status", 0) >= 400:
            visit.failed.append(f"{params['response']['url'][:120]}: "
                                f"HTTP {params['response']['status']}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            visit.console_errors.append(params["entry"]["text"])
        elif method == "Runtime.exceptionThrown":
            visit.console_errors.append(params["exceptionDetails"].get("text", "exception"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.profile.cleanup()
