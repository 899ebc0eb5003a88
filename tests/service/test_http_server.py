"""The job service's HTTP transport (cnvkit_nf/service/http_server.py on uvicorn), attacked the
way the adversarial probe attacked Python's http.server: backlog, bursts, odd methods, broken
Content-Length, trickling clients, threads. One service for the module; no job runs."""

from __future__ import annotations

import asyncio
import http.client
import json
import resource
import socket
import ssl
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cnvkit_nf.service import http_server
from cnvkit_nf.service.config import DEFAULT_LIMITS
from scaffold.local_service import LocalService

TOKEN = "transport-token-0123456789"
HEAD_SECONDS, REQUEST_SECONDS, MAX_CONNECTIONS = 2, 3, 700
JOBS = "/v2.0/lab/gene/tools/cnvkit"


@pytest.fixture(scope="module")
def service(tmp_path_factory, nextflow_bin):
    folder = tmp_path_factory.mktemp("transport")
    config = folder / "service.json"
    config.write_text(json.dumps({
        "tokens": [{"token": TOKEN, "owner": "t", "projects": ["lab"]}],
        "limits": {"head_seconds": HEAD_SECONDS, "request_seconds": REQUEST_SECONDS,
                   "max_connections": MAX_CONNECTIONS}}))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # the attacks open many sockets
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
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
    assert_family_error(answer, "DLI.0001")


def assert_family_error(answer: bytes, code: str) -> None:
    """An error answer in the family's documented form: a JSON body of its two keys."""
    head, _, body = answer.partition(b"\r\n\r\n")
    assert _header(head, b"content-type") == b"application/json", head
    assert json.loads(body)["error_code"] == code and json.loads(body)["error_msg"], body


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
        def caller_of(self, *args):
            return None

        def submission_token(self, *args):
            return None

        def handle(self, *args):
            raise RuntimeError("the job store went away")

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "raw_path": target.encode(), "query_string": b"",
             "headers": []}
    asyncio.run(http_server.AsgiApp(Broken(), DEFAULT_LIMITS)(scope, receive, send))
    assert sent[0]["status"] == 500
    assert json.loads(sent[1]["body"]) == body


def _latencies(service: LocalService, seconds: float) -> list[float]:
    """Seconds each of a token's queries took, one every 0.1 s for `seconds` (at least one);
    all must be answered 200."""
    taken, stop = [], time.monotonic() + seconds
    while not taken or time.monotonic() < stop:
        started = time.monotonic()
        assert service.call("GET", JOBS, TOKEN)[0] == 200
        taken.append(time.monotonic() - started)
        time.sleep(0.1)
    return taken


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the service closed a connection the client has kept open."""
    try:
        return sock.recv(1 << 16, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, TimeoutError):
        return False  # open, nothing sent
    except ConnectionResetError:
        return True


def test_silent_connections_neither_take_the_capacity_nor_outlast_their_deadline(service):
    """About 1,000 silent connections without a token made every request answer 503 (uvicorn's
    limit_concurrency counts them), and 100 new ones a second kept it so."""
    host, port = address(service)
    silent = [socket.create_connection((host, port), timeout=10) for _ in range(1000)]
    try:
        taken, stop = [], time.monotonic() + 3
        while time.monotonic() < stop:  # 100 new silent connections a second meanwhile
            silent += [socket.create_connection((host, port), timeout=10) for _ in range(10)]
            taken += _latencies(service, 0)
            time.sleep(0.1)
        assert max(taken) < 1.0, taken
        time.sleep(HEAD_SECONDS + 1)
        assert all(_closed_by_server(sock) for sock in silent)  # evicted, or past the deadline
    finally:
        for sock in silent:
            sock.close()


def test_a_call_without_a_valid_token_keeps_no_connection(service):
    """Unauthenticated callers never hold idle kept-alive connections."""
    for token in (None, "not-a-token-0123456789"):
        with socket.create_connection(address(service), timeout=10) as sock:
            header = f"X-Auth-Token: {token}\r\n" if token else ""
            sock.sendall(f"GET {JOBS} HTTP/1.1\r\nHost: x\r\n{header}\r\n".encode())
            answer = b""
            while chunk := sock.recv(65536):  # until the service closes the connection
                answer += chunk
        assert status_line(answer).split()[1] == "401" and b"connection: close" in answer
    with socket.create_connection(address(service), timeout=10) as sock:  # with one: kept
        sock.sendall(f"GET {JOBS} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {TOKEN}\r\n\r\n"
                     .encode())
        assert b"200 OK" in sock.recv(65536)
        time.sleep(0.5)
        assert not _closed_by_server(sock)


def test_trickled_uploads_hold_nothing_that_others_need(service):
    """Twenty connections trickling POST bodies with a valid token held the API's threads:
    every other caller stalled for about 10 s at a time."""
    host, port = address(service)
    first_answers: dict[int, bytes] = {}

    def trickle(number: int) -> None:
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(f"POST {JOBS} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {TOKEN}\r\n"
                         "Content-Length: 1000\r\n\r\n{".encode())
            sock.settimeout(0.5)
            first_answers[number] = b""  # none: its body is being read
            try:
                while b"DLI." not in first_answers[number]:  # a refusal, head and body
                    first_answers[number] += sock.recv(65536)
            except TimeoutError:
                pass
            try:
                for _ in range(REQUEST_SECONDS + 2):
                    sock.send(b" ")
                    time.sleep(1)
            except OSError:
                pass  # cut off at its deadline

    threads = [threading.Thread(target=trickle, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    taken = _latencies(service, REQUEST_SECONDS + 1)
    for thread in threads:
        thread.join(timeout=60)
    assert max(taken) < 1.0, taken
    refused = [n for n, answer in first_answers.items() if answer.startswith(b"HTTP/1.1 429")]
    assert len(refused) == 20 - 4, first_answers  # max_uploads_per_token: 4 at once
    assert b"retry-after: 1" in first_answers[refused[0]].lower()
    assert b"DLI.0009" in first_answers[refused[0]]


@pytest.mark.parametrize("pad", [20 << 10, 100 << 10])
def test_a_request_head_over_the_limit_is_refused_however_it_arrives(service, pad):
    """16 KiB was not enforced when the whole head arrived in one read: 100 KB headers
    were accepted."""
    fields = b"".join(b"X-Pad-%d: %s\r\n" % (n, b"x" * 1000) for n in range(pad // 1000))
    answer = raw(service, b"GET /health HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert status_line(answer).startswith("HTTP/1.1 400"), answer[:200]
    assert_family_error(answer, "DLI.0001")
    small = raw(service, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"x" * 8000
                + b"\r\n\r\n")
    assert status_line(small).startswith("HTTP/1.1 200")
