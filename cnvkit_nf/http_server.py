"""The job service's HTTP transport: its API (`service.App`) on uvicorn, HTTP/1.1 over h11.

uvicorn gives keep-alive, a listen backlog, header-size limits, TLS and a bounded number of
connections (more are answered 503); the API runs in a bounded pool of threads. What uvicorn
lacks is added here, in one place: a deadline for receiving each request (headers and body),
after which the connection is closed, so a client that trickles its request (or sends less
body than it announced) is cut off without delaying anyone; and the body rules of the service
family (a Content-Length, no chunked upload, at most the configured size, refused unread).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from cnvkit_nf.service import ApiError, App, internal_error

log = logging.getLogger("cnvkit_nf.http")


BACKLOG = 2048  # connections waiting to be accepted


@dataclass(frozen=True)
class Transport:
    """Where the service listens and how it meets its clients: `limits` are the service
    config's (request_seconds, keep_alive_seconds, max_connections, max_header_bytes,
    api_threads; see service_config.DEFAULT_LIMITS)."""

    host: str
    port: int
    limits: dict
    tls_cert: str | None = None  # PEM certificate chain; with tls_key, the service speaks HTTPS
    tls_key: str | None = None


class _RequestDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline for receiving each request, counted from its
    first byte (or from the connection's opening); `Server` sets `request_seconds`."""

    request_seconds: float

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline = self.loop.call_later(self.request_seconds, self._expire)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_seconds, self._expire)
        super().data_received(data)
        if self.conn.their_state is not h11.SEND_BODY and self.conn.their_state is not h11.IDLE:
            self._disarm()  # the whole request is in

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.warning("%s: request not received within %ss; connection closed",
                        self.client, self.request_seconds)
            self.transport.close()


class AsgiApp:
    """The API as an ASGI application: each call runs `App.handle` in a worker thread."""

    def __init__(self, app: App, threads: int):
        self.app = app
        self.threads = ThreadPoolExecutor(threads, thread_name_prefix="api")

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        headers = _Headers(scope["headers"])
        target = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")

        loop = asyncio.get_running_loop()

        def read_body(limit: int) -> bytes:  # in the worker thread, when the API wants it
            return asyncio.run_coroutine_threadsafe(_body(headers, receive, limit), loop).result()

        allow: tuple[str, ...] = ()
        try:
            status, body = await loop.run_in_executor(
                self.threads, self.app.handle, scope["method"], target, headers, read_body)
        except ApiError as err:
            status, body, allow = err.status, err.body, err.allow
        except Exception:  # noqa: BLE001 - every failure gets the family's 500 answer
            log.exception("internal error")
            status, body = internal_error(target)
        data = json.dumps(body).encode()
        answer = [(b"content-type", b"application/json"),
                  (b"content-length", str(len(data)).encode())]
        if allow:
            answer.append((b"allow", ", ".join(allow).encode()))
        await send({"type": "http.response.start", "status": status, "headers": answer})
        await send({"type": "http.response.body", "body": data})


class _Headers:
    """Request headers by case-insensitive name (the first of a repeated one)."""

    def __init__(self, raw: list[tuple[bytes, bytes]]):
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
        protocol = type("RequestDeadline", (_RequestDeadline,),
                        {"request_seconds": limits["request_seconds"]})
        self.config = uvicorn.Config(
            AsgiApp(app, limits["api_threads"]), host=transport.host, port=transport.port,
            http=protocol, lifespan="on", log_level="warning", access_log=False,
            server_header=False, backlog=BACKLOG, limit_concurrency=limits["max_connections"],
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
    """Start the workers and the HTTP server; `ready(url)` once it listens."""
    app.pool.start()
    server = Server(app, transport)
    server.start(ready)
    return server
