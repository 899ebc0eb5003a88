"""Per-connection rules uvicorn does not offer: deadlines, a connection capacity, and error
answers in the service family's form for requests h11 cannot read.

uvicorn (0.54) has no supported way to bound how long a request head or body may take (its
`timeout_keep_alive` applies only between requests), and answers an unreadable request in plain
text. So this module subclasses its h11 protocol, `H11Protocol`, which is private. Every
internal it relies on is named in `RELIED_ON` and checked by `internals_problems` (the service
refuses to start when one is missing; `tests/service/test_connections.py` fails when they
change), and uvicorn is pinned to `UVICORN` (requirements.txt, pyproject.toml).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("cnvkit_nf.http")

UVICORN = "0.54.0"  # the version whose internals `RELIED_ON` names
# The H11Protocol methods this module overrides or calls, with their parameters.
RELIED_ON = {
    "connection_made": ("self", "transport"),
    "data_received": ("self", "data"),
    "on_response_complete": ("self",),
    "connection_lost": ("self", "exc"),
    "send_400_response": ("self", "msg"),
}
# What a live connection must have: `conn` (h11's), `connections` (the server's, all open),
# `cycle` (the request being answered, with its `response_complete`, or None), `loop`,
# `client`, `transport`.
INSTANCE_ATTRIBUTES = ("conn", "connections", "cycle", "loop", "client", "transport")

_BUSY = json.dumps({"error_code": "DLI.0009", "error_msg": "system limit reached: too busy"})
REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
           b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY.encode()))
_HEAD, _REQUEST = "request head", "request"  # what a connection's deadline waits for


def internals_problems(connection: H11Protocol | None = None) -> list[str]:
    """What of `RELIED_ON` (and, given a live connection, of `INSTANCE_ATTRIBUTES`) the
    installed uvicorn lacks; empty when all is there."""
    problems = []
    for name, parameters in RELIED_ON.items():
        method = vars(H11Protocol).get(name)  # uvicorn's own, not asyncio's default
        if method is None:
            problems.append(f"H11Protocol.{name} is gone")
        elif tuple(inspect.signature(method).parameters) != parameters:
            problems.append(f"H11Protocol.{name} takes {inspect.signature(method)}, not "
                            f"({', '.join(parameters)})")
    if connection is not None:
        problems += [f"a connection has no {name}" for name in INSTANCE_ATTRIBUTES
                     if not hasattr(connection, name)]
        if not isinstance(getattr(connection, "conn", None), h11.Connection):
            problems.append("a connection's conn is not an h11.Connection")
        cycle = getattr(connection, "cycle", None)
        if cycle is not None and not isinstance(getattr(cycle, "response_complete", None), bool):
            problems.append("the request being answered has no response_complete")
    if problems and uvicorn.__version__ != UVICORN:
        problems.append(f"uvicorn is {uvicorn.__version__}; this service is tested with "
                        f"{UVICORN} (pip install uvicorn=={UVICORN})")
    return problems


def connection_class(head_seconds: float, request_seconds: float, max_connections: int
                     ) -> type[H11Protocol]:
    """uvicorn's h11 protocol under these rules (for `uvicorn.Config(http=...)`):

    - a connection must deliver a complete request head within `head_seconds` of opening (or
      of its first byte, for the next request of a kept-alive connection), and the whole
      request within `request_seconds`; else it is closed;
    - at most `max_connections` are open: a new one beyond takes the place of a connection
      not being answered (one that has not sent a request head yet, else the longest idle
      kept-alive one), or is refused 503 when all are being answered;
    - a request h11 cannot read is answered 400 in the family's JSON form.
    """
    return type("Connection", (_Connection,), {
        "head_seconds": head_seconds, "request_seconds": request_seconds,
        "max_connections": max_connections})


class _Connection(H11Protocol):
    head_seconds: float
    request_seconds: float
    max_connections: int

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.idle_since = self._started = self.loop.time()  # idle: no request under way
        self._deadline: asyncio.TimerHandle | None = None
        self._arm(self.head_seconds, _HEAD)
        if len(self.connections) > self.max_connections and not self._make_room():
            log.warning("%s: %d connections, all answering: refused", self.client,
                        len(self.connections))
            self.transport.write(REFUSED)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None:  # the first byte of the next request of a kept-alive one
            self._started = self.loop.time()
            self._arm(self.head_seconds, _HEAD)
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self._waiting == _HEAD:  # the head is in: the rest by the request's deadline
                self._arm(max(0.0, self.request_seconds - (self.loop.time() - self._started)),
                          _REQUEST)
        elif state is not h11.IDLE:
            self._disarm()  # the whole request is in

    def on_response_complete(self) -> None:
        self.idle_since = self.loop.time()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """An unreadable request (a malformed or too long head): 400 in the family's form."""
        body = json.dumps({"error_code": "DLI.0001",
                           "error_msg": f"the HTTP request cannot be read: {msg}"}).encode()
        for event in (h11.Response(status_code=400, reason=b"Bad Request", headers=[
                          (b"content-type", b"application/json"), (b"connection", b"close"),
                          (b"content-length", str(len(body)).encode())]),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()

    @property
    def answering(self) -> bool:
        """Whether a request of this connection is being received (its body) or answered."""
        return self.cycle is not None and not self.cycle.response_complete

    def _make_room(self) -> bool:
        """Close a connection that is not answering, to make room for this one: one that has
        never sent a whole request head (the oldest), else the one idle the longest."""
        idle = [other for other in self.connections if other is not self
                and isinstance(other, _Connection) and not other.answering]
        if not idle:
            return False
        victim = min(idle, key=lambda other: (other.cycle is not None, other.idle_since))
        victim.transport.close()
        return True

    def _arm(self, seconds: float, waiting: str) -> None:
        self._disarm()
        self._waiting = waiting
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.warning("%s: %s not received in time; connection closed", self.client,
                        self._waiting)
            self.transport.close()
