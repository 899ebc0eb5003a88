"""The job service's HTTP transport: its API (`app.App`) on uvicorn, HTTP/1.1 over h11.

uvicorn gives keep-alive, a listen backlog, TLS and the HTTP parsing. What it lacks is added
here, in one place, so that no client can hold what others need:

- deadlines for a request's head and body, and a bound on open connections (`connections`,
  the one module that reaches into uvicorn's internals). An answer to a request without a
  valid token closes its connection, so unauthenticated clients never hold idle connections;
- the request head (line and headers) of at most `max_header_bytes`, however it arrives;
- bodies: only submissions (a request to check, a WES run) by a valid token are read, in the
  event loop, never in a thread; each token has at most `max_uploads_per_token` submissions
  under way (more are answered 429); the service family's body rules apply (a Content-Length,
  no chunked upload, at most `max_body_bytes`, refused unread);
- threads: queries run in a pool of `api_threads`, submissions (which check files) in a pool of
  `submission_threads` of their own, so submissions never starve another project's reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import uvicorn

from cnvkit_nf.service.api_error import ApiError
from cnvkit_nf.service.app import App, error_answer, internal_error
from cnvkit_nf.service.connections import connection_class, internals_problems

log = logging.getLogger("cnvkit_nf.http")


BACKLOG = 2048  # connections waiting to be accepted


@dataclass(frozen=True)
class Transport:
    """Where the service listens and how it meets its clients: `limits` are the service
    config's (see config.DEFAULT_LIMITS)."""

    host: str
    port: int
    limits: dict
    tls_cert: str | None = None  # PEM certificate chain; with tls_key, the service speaks HTTPS
    tls_key: str | None = None


class AsgiApp:
    """The API as an ASGI application: each call runs `App.handle` in a worker thread of its
    kind (query or submission), a submission's body read before."""

    def __init__(self, app: App, limits: dict):
        self.app, self.limits = app, limits
        self.queries = ThreadPoolExecutor(limits["api_threads"], thread_name_prefix="api")
        self.submissions = ThreadPoolExecutor(limits["submission_threads"],
                                              thread_name_prefix="submit")
        self.uploads: Counter[str] = Counter()  # submissions under way by token (loop only)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        headers = _Headers(scope["headers"], scope.get("scheme", "http"))
        target = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        caller = self.app.caller_of(target, headers)
        # no idle connection without a valid token
        answer: list[tuple[bytes, bytes]] = [] if caller else [(b"connection", b"close")]
        try:
            status, body = await self._answer(scope, target, headers, receive, answer,
                                              caller is not None)
        except ApiError as err:
            status, body = error_answer(target, err)
            answer += [(b"allow", ", ".join(err.allow).encode())] if err.allow else []
        except Exception:  # noqa: BLE001 - every failure gets the family's 500 answer
            log.exception("internal error")
            status, body = internal_error(target)
        if isinstance(body, str):  # a text answer (WES's output URLs)
            data, kind = body.encode(), b"text/plain; charset=utf-8"
        else:
            data, kind = json.dumps(body).encode(), b"application/json"
        answer += [(b"content-type", kind), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": answer})
        await send({"type": "http.response.body", "body": data})

    async def _answer(self, scope: dict, target: str, headers: _Headers, receive: Callable,
                      answer: list, authenticated: bool) -> tuple[int, dict]:
        """The answer to one request: a query in the query pool; a submission by a valid
        token (`authenticated`) has its body read (at most `max_uploads_per_token` at once
        per token), then it is checked in the submission pool."""
        method, loop = scope["method"], asyncio.get_running_loop()
        head = len(method) + len(target) + 11 + sum(len(name) + len(value) + 4
                                                    for name, value in scope["headers"])
        if head > self.limits["max_header_bytes"]:
            raise ApiError(400, "DLI.0001", f"the request line and headers have {head} bytes; "
                           f"this service takes at most {self.limits['max_header_bytes']}")
        token = self.app.submission_token(method, target, headers) if authenticated else None
        if token is None:
            return await loop.run_in_executor(self.queries, self.app.handle, method, target,
                                              headers, None)
        if self.uploads[token] >= self.limits["max_uploads_per_token"]:
            answer.append((b"retry-after", b"1"))
            raise ApiError(429, "DLI.0009", "system limit reached: "
                           f"{self.uploads[token]} submissions of this token are under way; "
                           "send the next when one has been answered")
        self.uploads[token] += 1
        try:
            body = await _body(headers, receive, self.limits["max_body_bytes"])
            return await loop.run_in_executor(self.submissions, self.app.handle, method,
                                              target, headers, body)
        finally:
            self.uploads[token] -= 1
            if not self.uploads[token]:
                del self.uploads[token]


class _Headers:
    """Request headers by case-insensitive name (the first of a repeated one), and the
    scheme the request came by (http, or https with --tls-cert)."""

    def __init__(self, raw: list[tuple[bytes, bytes]], scheme: str = "http"):
        self.scheme = scheme
        self._values: dict[str, str] = {}
        for name, value in raw:
            self._values.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name.lower(), default)


async def _body(headers: _Headers, receive: Callable, limit: int) -> bytes:
    """The request body, at most `limit` bytes; a larger one is refused unread (h11 has
    already refused a malformed or repeated Content-Length)."""
    if headers.get("transfer-encoding"):
        raise ApiError(400, "DLI.0001", "send the body with a Content-Length, not chunked")
    size = int(headers.get("content-length") or 0)
    if size > limit:
        raise ApiError(400, "DLI.0009", f"system limit reached: the body has {size} bytes; "
                       f"this service takes at most {limit}")
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "DLI.0001", "the client went away before sending its body")
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _lifespan(receive: Callable, send: Callable) -> None:
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


class Server:
    """The service's HTTP server, run in a thread of its own; `stop()` ends it."""

    def __init__(self, app: App, transport: Transport):
        limits = transport.limits
        problems = internals_problems()
        if problems:
            raise OSError("this uvicorn lacks what the service's connection rules need: "
                          + "; ".join(problems))
        protocol = connection_class(limits["head_seconds"], limits["request_seconds"],
                                    limits["max_connections"])
        self.config = uvicorn.Config(
            AsgiApp(app, limits), host=transport.host, port=transport.port,
            http=protocol, lifespan="on", log_level="warning", access_log=False,
            server_header=False, backlog=BACKLOG,
            timeout_keep_alive=limits["keep_alive_seconds"],
            h11_max_incomplete_event_size=limits["max_header_bytes"],
            ssl_certfile=transport.tls_cert, ssl_keyfile=transport.tls_key)
        self.server = uvicorn.Server(self.config)
        self.scheme = "https" if transport.tls_cert else "http"

    def start(self, ready: Callable[[str], None]) -> None:
        """Listen, then call `ready(url)` with the address bound."""
        started = threading.Event()
        thread = threading.Thread(target=lambda: asyncio.run(self._serve(started)),
                                  name="http", daemon=True)
        thread.start()
        started.wait()
        if not self.server.started:
            raise OSError(f"the HTTP server could not listen on {self.config.host}:"
                          f"{self.config.port} (see the log above)")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        ready(f"{self.scheme}://{self.config.host}:{port}")

    async def _serve(self, started: threading.Event) -> None:
        task = asyncio.create_task(self.server.serve())
        while not self.server.started and not task.done():
            await asyncio.sleep(0.01)
        started.set()
        await task

    def stop(self) -> None:
        self.server.should_exit = True


def serve(app: App, transport: Transport, ready: Callable[[str], None] = lambda url: None
          ) -> Server:
    """Start the workers and the HTTP server; `ready(url)` once it listens. Each connection
    takes a file descriptor: the soft limit on them is raised to the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < transport.limits["max_connections"] + 256:
        log.warning("at most %d files may be open (ulimit -Hn): fewer than max_connections "
                    "(%d) need", hard, transport.limits["max_connections"])
    app.jobs.pool.start()
    server = Server(app, transport)
    server.start(ready)
    return server
