"""The one module that reaches into uvicorn's internals (cnvkit_nf/service/connections.py):
fails loudly when the pinned uvicorn changes, or when what the module relies on is gone from a
live connection. The rules themselves are attacked over HTTP in test_http_server.py."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from cnvkit_nf.service import connections

ROOT = Path(__file__).resolve().parents[2]


def test_uvicorn_is_the_version_the_connection_rules_were_written_for():
    assert uvicorn.__version__ == connections.UVICORN, (
        f"uvicorn {uvicorn.__version__} is installed; connections.py was checked against "
        f"{connections.UVICORN}: read its RELIED_ON against the new uvicorn, then move the pin")
    pin = f"uvicorn=={connections.UVICORN}"
    assert pin in (ROOT / "requirements.txt").read_text().split()
    assert f'"{pin}"' in (ROOT / "pyproject.toml").read_text()


def test_the_methods_relied_on_are_there():
    assert connections.internals_problems() == []


def test_a_live_connection_has_what_the_rules_read():
    """A real uvicorn server on the module's protocol, with a request being answered: the
    attributes of the connection (and of its request) are those the rules read."""
    answering, release = threading.Event(), threading.Event()

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        answering.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            http=connections.connection_class(5, 5, 10))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert answering.wait(10)
            live = list(server.server_state.connections)
            assert len(live) == 1 and live[0].cycle is not None
            assert connections.internals_problems(live[0]) == []
            assert live[0].answering
            release.set()
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    finally:
        release.set()
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("missing", sorted(connections.RELIED_ON))
def test_a_method_gone_from_uvicorn_is_named(monkeypatch, missing):
    """What the service would say (and refuse to start on) if uvicorn dropped a method."""
    monkeypatch.delattr(connections.H11Protocol, missing)
    assert f"H11Protocol.{missing} is gone" in connections.internals_problems()
