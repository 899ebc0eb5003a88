"""A `cnvkit-nf serve` process on 127.0.0.1 (for tests, benchmarks and `make demo-service`),
stopped by its PID, and a raw HTTP caller."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


class LocalService:
    """The job service run as users run it (`bin/cnvkit-nf serve`), stopped by its PID."""

    def __init__(self, state_dir: Path, config: Path, *args: str, env: dict | None = None):
        self.state_dir, self.config, self.args = state_dir, config, args
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None
        self.url = ""

    @property
    def log(self) -> Path:
        """Where its stderr goes (appended across restarts)."""
        return self.state_dir.parent / f"{self.state_dir.name}.serve.log"

    def start(self) -> LocalService:
        """Start it and wait until it listens (it exits early, with a log, when it cannot)."""
        log = open(self.log, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(ROOT / "bin" / "cnvkit-nf"), "--state-dir", str(self.state_dir), "serve",
             "--port", "0", "--service-config", str(self.config), *self.args],
            stdout=subprocess.PIPE, stderr=log, text=True, env=self.env,
        )
        log.close()
        line = self.process.stdout.readline()
        if not line.startswith("listening on "):
            self.process.kill()
            raise RuntimeError(f"the service did not start: {line!r}; see {log.name}")
        self.url = line.split()[-1]
        return self

    def stop(self) -> int:
        """Stop it as an operator would (SIGTERM) and return its exit status."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        return self.process.returncode if self.process else 0

    def kill(self) -> None:
        """kill -9: no chance to clean up."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def call(self, method: str, path: str, token: str | None = None, body=None,
             headers: dict | None = None) -> tuple[int, dict]:
        """One HTTP request; `body` is JSON-encoded unless it is bytes. (status, JSON body)."""
        address = urlsplit(self.url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        sent = dict(headers or {})
        if token:
            sent["X-Auth-Token"] = token
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        try:
            connection.request(method, path, body=body, headers=sent)
            answer = connection.getresponse()
            return answer.status, json.loads(answer.read() or b"{}")
        finally:
            connection.close()
