"""`cnvkit-nf submit/status --server` against a service that is restarting or busy: what the
service did not take is sent again, with growing pauses, within the bound; nothing that may
have reached it is sent twice."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.service.test_service import ALICE, cli, request_for, site, start  # noqa: F401

pytestmark = pytest.mark.e2e


class Scripted(ThreadingHTTPServer):
    """A server that answers each request with the next of `answers` (status, headers), the
    last one again when they run out; 200 answers carry `body`. It records the methods."""

    def __init__(self, answers: list[tuple[int, dict]], body: dict):
        self.answers, self.body, self.seen = list(answers), body, []
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        server: Scripted = self.server  # type: ignore[assignment]
        server.seen.append(self.command)
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        status, headers = server.answers.pop(0) if len(server.answers) > 1 \
            else server.answers[0]
        body = json.dumps(server.body if status == 200 else
                          {"error_code": "DLI.0009", "error_msg": f"answer {status}"}).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json",
                            "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


JOB = {"instance_id": "j-1", "status": "RUNNING", "progress": "1/3", "start_time": 1,
       "duration": 2, "message": None, "warnings": []}


def status(url: str, seconds: str = "30") -> tuple:
    started = time.monotonic()
    done = cli("status", "j-1", "--json", "--server", url, "--project", "lab-a", "--token",
               ALICE, env={"CNVKIT_NF_RETRY_SECONDS": seconds})
    return done, time.monotonic() - started


def test_status_waits_out_a_busy_service():
    server = Scripted([(503, {}), (429, {"Retry-After": "1"}), (200, {})],
                      {"count": 1, "instances": [JOB]})
    done, _ = status(server.url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "RUNNING"
    assert server.seen == ["GET"] * 3
    assert done.stderr.count("trying again in") == 2
    assert "trying again in 1 s" in done.stderr  # the 429's Retry-After, not the first pause


def test_a_query_is_sent_again_after_a_gateway_error_but_a_submission_is_not(tmp_path):
    server = Scripted([(502, {}), (200, {})], {"count": 1, "instances": [JOB]})
    assert status(server.url)[0].returncode == 0 and server.seen == ["GET", "GET"]
    server = Scripted([(502, {}), (200, {})], {"instance_id": "j-2"})
    request = tmp_path / "request.json"
    request.write_text("{}")
    done = cli("submit", str(request), "--server", server.url, "--project", "lab-a",
               "--token", ALICE)
    assert done.returncode == 1 and server.seen == ["POST"], done.stderr  # it may have landed
    assert "HTTP 502" in done.stderr or "DLI.0009" in done.stderr


def test_the_retries_stop_at_the_bound():
    server = Scripted([(503, {})], {})
    done, took = status(server.url, seconds="2")
    assert done.returncode == 1 and "DLI.0009" in done.stderr
    assert 1 <= took < 10 and 2 <= len(server.seen) <= 4, (took, server.seen)
    bad = cli("status", "j-1", "--server", server.url, "--project", "lab-a",
              env={"CNVKIT_NF_RETRY_SECONDS": "forever"})
    assert bad.returncode == 2 and "CNVKIT_NF_RETRY_SECONDS='forever'" in bad.stderr


def test_submit_reaches_a_service_that_starts_later(site, tmp_path):  # noqa: F811
    """A real service, started 2 s after `submit` began: the refused connections are sent
    again and the job is taken, once."""
    with socket.socket() as probe:  # a free port for the service to take later
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    request = tmp_path / "request.json"
    request.write_text(json.dumps(request_for(site, "retried")))
    services = []
    threading.Timer(2, lambda: services.append(
        start(site, "retry-state", "--stub", "--port", str(port)))).start()
    try:
        done = cli("submit", str(request), "--server", f"http://127.0.0.1:{port}",
                   "--project", "lab-a", "--token", ALICE)
        assert done.returncode == 0, done.stderr
        assert "Connection refused" in done.stderr and "trying again in" in done.stderr
        instance_id = done.stdout.split(": ", 1)[1].strip()
        status, body = services[0].call("GET", "/v2.0/lab-a/gene/tools/cnvkit", ALICE)
        assert status == 200  # the service's state dir is new: one job, the one submitted
        assert [job["instance_id"] for job in body["instances"]] == [instance_id]
    finally:
        for service in services:
            assert service.stop() == 0
