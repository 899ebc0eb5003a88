"""The job service's HTTP transport (cnvkit_nf/http_server.py on uvicorn), attacked the way the
adversarial probe attacked Python's http.server: backlog, bursts, odd methods, broken
Content-Length, trickling clients, threads. One service for the module; no job runs."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cnvkit_nf import http_server
from scaffold.local_service import LocalService

TOKEN = "transport-token-0123456789"
REQUEST_SECONDS = 3


@pytest.fixture(scope="module")
def service(tmp_path_factory, nextflow_bin):
    folder = tmp_path_factory.mktemp("transport")
    config = folder / "service.json"
    config.write_text(json.dumps({
        "tokens": [{"token": TOKEN, "owner": "t", "projects": ["lab"]}],
        "limits": {"request_seconds": REQUEST_SECONDS, "max_connections": 700}}))
    running = LocalService(folder / "state", config).start()
    yield running
    running.stop()


def address(service: LocalService) -> tuple[str, int]:
    url = urlsplit(service.url)
    return url.hostname, url.port


def raw(service: LocalService, data: bytes, wait: float = 10) -> bytes:
    """Send raw bytes; the server's first answer (head and the body its Content-Length
    announces; none for HEAD), or what it sent before closing or before `wait` passed."""
    with socket.create_connection(address(service), timeout=wait) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                head, end, body = answer.partition(b"\r\n\r\n")
                if end and (data.startswith(b"HEAD ") or
                            len(body) >= int(_header(head, b"content-length") or 0)):
                    break
        except TimeoutError:
            pass
    return answer


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def status_line(answer: bytes) -> str:
    return answer.split(b"\r\n", 1)[0].decode()


def threads_of(service: LocalService) -> int:
    status = Path(f"/proc/{service.process.pid}/status").read_text()
    return int(status.split("Threads:")[1].split()[0])


def test_the_listen_backlog_holds_a_burst(service):
    """http.server listened with a backlog of 5: 2 in 100 connections were reset at 20 at once."""
    host, port = address(service)
    listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True,
                               text=True, check=True).stdout.split()
    assert int(listening[2]) >= 128  # Send-Q of a listening socket: its backlog

    def health(_: int) -> int:
        connection = http.client.HTTPConnection(host, port, timeout=30)
        try:
            connection.request("GET", "/health")
            return connection.getresponse().status
        finally:
            connection.close()

    with ThreadPoolExecutor(100) as pool:
        assert list(pool.map(health, range(200))) == [200] * 200


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "TRACE", "PUT", "PATCH", "get", "post"])
def test_methods_are_answered_4xx_never_5xx(service, method):
    answer = raw(service, f"{method} /v2.0/lab/gene/tools/cnvkit HTTP/1.1\r\nHost: x\r\n"
                          f"X-Auth-Token: {TOKEN}\r\nContent-Length: 0\r\n\r\n".encode())
    code = int(status_line(answer).split()[1])
    assert 400 <= code < 500, answer
    if method == "HEAD":
        assert answer.endswith(b"\r\n\r\n")  # no body
    else:
        assert b'"error_code": "DLI.0007"' in answer and b"allow: get, post" in answer.lower()


@pytest.mark.parametrize("lengths", [["5", "7"], ["\u0663"], ["-1"], ["5 5"]])
def test_a_bad_content_length_is_refused(service, lengths):
    """Two conflicting Content-Lengths (http.server took the first), a non-ASCII one (a 500)."""
    head = "".join(f"Content-Length: {value}\r\n" for value in lengths)
    answer = raw(service, (f"POST /v2.0/lab/gene/tools/cnvkit HTTP/1.1\r\nHost: x\r\n{head}"
                           "\r\nabcdefg").encode())
    assert status_line(answer).startswith("HTTP/1.1 400"), answer


def test_a_body_shorter_than_announced_is_cut_off(service):
    """http.server held such a connection 30 s, then answered 500."""
    started = time.monotonic()
    answer = raw(service, f"POST /v2.0/lab/gene/tools/cnvkit HTTP/1.1\r\nHost: x\r\n"
                          f"X-Auth-Token: {TOKEN}\r\nContent-Length: 100\r\n\r\n{{".encode(),
                 wait=REQUEST_SECONDS + 20)
    assert not answer.startswith(b"HTTP/1.1 5")
    assert time.monotonic() - started < REQUEST_SECONDS + 5


def test_a_trickling_client_delays_nobody_and_is_cut_off(service):
    """Headers one byte a second: the others are answered meanwhile, it is disconnected once
    its time to send a request is up."""
    host, port = address(service)
    cut = {}

    def trickle() -> None:
        with socket.create_connection((host, port), timeout=30) as sock:
            started = time.monotonic()
            try:
                for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"x" * 60:
                    sock.send(bytes([byte]))
                    time.sleep(1)
                cut["after"] = None
            except OSError:
                cut["after"] = time.monotonic() - started

    slow = threading.Thread(target=trickle)
    slow.start()
    latencies = []
    for _ in range(10):
        started = time.monotonic()
        assert service.call("GET", "/health")[0] == 200
        latencies.append(time.monotonic() - started)
        time.sleep(0.2)
    slow.join(timeout=90)
    assert max(latencies) < 1.0, latencies
    assert cut["after"] is not None and cut["after"] < REQUEST_SECONDS + 5, cut


def test_many_open_connections_do_not_take_a_thread_each(service):
    """1,500 trickling clients held 1,491 threads of http.server."""
    host, port = address(service)
    before = threads_of(service)
    sockets = []
    try:
        for _ in range(600):
            sock = socket.create_connection((host, port), timeout=10)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never more
            sockets.append(sock)
        time.sleep(0.5)
        assert threads_of(service) <= before + 2
        assert service.call("GET", "/health")[0] == 200  # still answering
    finally:
        for sock in sockets:
            sock.close()


def test_an_oversized_body_is_refused_unread(service):
    status, body = service.call("POST", "/v2.0/lab/gene/tools/cnvkit", TOKEN,
                                body=b"{" + b" " * (2 << 20) + b"}")
    assert status == 400 and body["error_code"] == "DLI.0009", body


def test_a_chunked_body_is_refused(service):
    """Bodies come with a Content-Length: a chunked one is 400 DLI.0001, and nothing queued."""
    jobs = "/v2.0/lab/gene/tools/cnvkit"
    status, body = service.call("POST", jobs, TOKEN, body=b"2\r\n{}\r\n0\r\n\r\n",
                                headers={"Transfer-Encoding": "chunked"})
    assert (status, body["error_code"]) == (400, "DLI.0001"), body
    assert "not chunked" in body["error_msg"]
    assert service.call("GET", jobs, TOKEN)[1]["count"] == 0


def test_tls(tmp_path, nextflow_bin):
    """--tls-cert/--tls-key: the same API over HTTPS."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    config = tmp_path / "service.json"
    config.write_text(json.dumps({"tokens": [{"token": TOKEN, "owner": "t",
                                              "projects": ["lab"]}]}))
    secure = LocalService(tmp_path / "state", config, "--tls-cert", str(cert),
                          "--tls-key", str(key)).start()
    try:
        assert secure.url.startswith("https://127.0.0.1:")
        host, port = address(secure)
        context = ssl.create_default_context(cafile=str(cert))
        connection = http.client.HTTPSConnection(host, port, context=context, timeout=30)
        connection.request("GET", "/v2.0/lab/gene/tools/cnvkit", headers={"X-Auth-Token": TOKEN})
        answer = connection.getresponse()
        assert answer.status == 200 and json.loads(answer.read()) == {"count": 0,
                                                                      "instances": []}
        assert not raw(secure, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
            b"HTTP/1.1 200")  # no plain HTTP there
    finally:
        secure.stop()


@pytest.mark.parametrize(("target", "body"), [
    ("/v2.0/lab-a/gene/tools/cnvkit", {"error_code": "DLI.0999",
                                       "error_msg": "internal server error"}),
    ("/ga4gh/wes/v1/runs", {"msg": "internal server error", "status_code": 500}),
])
def test_a_failure_of_the_service_is_a_500_in_the_form_of_its_face(target, body):
    class Broken:
        def handle(self, *args):
            raise RuntimeError("the job store went away")

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "raw_path": target.encode(), "query_string": b"",
             "headers": []}
    asyncio.run(http_server.AsgiApp(Broken(), 1)(scope, receive, send))
    assert sent[0]["status"] == 500
    assert json.loads(sent[1]["body"]) == body
