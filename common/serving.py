"""Serve a WSGI app (a Flask app) on a thread: the one helper the demo, the command-line
kiosk and every test with a live server use, and `ledger serve` / `wallet serve` bind.

`serve_in_thread(app, host, port)` binds a threaded werkzeug server (port 0: the kernel
picks a free one, so tests never race on a port) and runs it on a daemon thread;
`ServedApp.url` is its base URL and `stop()` shuts it down, closes the socket and joins
the thread. It is also a context manager. Binding errors surface as OSError (werkzeug's
own "address in use" exit is turned into one). A connection silent for IDLE_TIMEOUT_S
is closed, and a request (line, headers and body) must have arrived whole within
REQUEST_READ_S of its first byte being awaited, however steadily it trickles: past
either, the reader sees the end of the stream (the app answers 400 to a cut body, never
500) and the connection is closed. The issuer runs gunicorn behind nginx instead.
"""

from __future__ import annotations

import errno
import io
import os
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

LOOPBACK = "127.0.0.1"
# Seconds a connection may stay silent (no header, body or next keep-alive request
# byte; or not reading an answer) before the server closes it. werkzeug's default is
# no limit: every connection anyone opened and left idle held a thread and a
# descriptor for good, and a few hundred of them exhausted the process's descriptors.
IDLE_TIMEOUT_S = 15.0
# Seconds in which a whole request must arrive. The idle timeout bounds each read only:
# a client sending one byte every 14 s kept a thread and a descriptor for as long as it
# liked, and enough of them took the server off the air just as silent ones did. 60 s
# carries the largest body any of these servers takes (a ledger node's 1,024-entry
# batch, about 22 MB of JSON) at 0.4 MB/s.
REQUEST_READ_S = 60.0
JOIN_TIMEOUT_S = 5.0  # seconds to wait for the serving thread after shutdown


@dataclass
class ServedApp:
    """A running threaded werkzeug server and its thread."""

    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def name(self) -> str:
        """The serving thread's name (what the caller called this server)."""
        return self.thread.name

    @property
    def host(self) -> str:
        return str(self.server.host)

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(JOIN_TIMEOUT_S)

    def __enter__(self) -> ServedApp:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port(host: str = LOOPBACK) -> int:
    """A port free right now, for a child process that must be told its port up front
    (in-process servers bind port 0 instead: no race between choosing and binding)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _DeadlineSocketReader(io.RawIOBase):
    """The connection's read side, as `socket.makefile("rb")` gives it, except that a
    read past its handler's deadline, or silent for the idle timeout, is the end of the
    stream (and every read after it): http.server then closes the connection, and a
    body cut short is werkzeug's ClientDisconnected (400) in the app, not an error."""

    def __init__(self, sock: socket.socket, handler: _DeadlineHandler) -> None:
        super().__init__()
        self._sock = sock
        self._handler = handler
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._ended:
            return 0
        idle = self._handler.timeout
        left = self._handler.read_deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError("request not received in time")
            self._sock.settimeout(left if idle is None else min(idle, left))
            return self._sock.recv_into(buffer)
        except TimeoutError:
            self._ended = True
            self._handler.close_connection = True
            return 0
        finally:
            self._sock.settimeout(idle)  # writes keep the idle timeout alone


class _DeadlineHandler(WSGIRequestHandler):
    """werkzeug's handler with the idle timeout (`timeout`, applied per socket read and
    write by socketserver) and a deadline for each request's arrival."""

    timeout = IDLE_TIMEOUT_S
    request_read_s = REQUEST_READ_S
    read_deadline = 0.0

    def setup(self) -> None:
        super().setup()
        self.read_deadline = time.monotonic() + self.request_read_s
        self.rfile = io.BufferedReader(_DeadlineSocketReader(self.connection, self))

    def handle_one_request(self) -> None:
        # Each keep-alive request gets its own time, counted from when it is awaited.
        self.read_deadline = time.monotonic() + self.request_read_s
        super().handle_one_request()


def bind(
    app: Any,
    host: str = LOOPBACK,
    port: int = 0,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
    request_read_s: float = REQUEST_READ_S,
) -> BaseWSGIServer:
    """A threaded werkzeug server bound to (host, port), not yet serving, that closes a
    connection silent for `idle_timeout_s` (socketserver.StreamRequestHandler applies
    the handler's `timeout` to each connection; http.server then ends it quietly) or
    whose request has not arrived whole within `request_read_s`."""
    handler = type(
        "DeadlineHandler",
        (_DeadlineHandler,),
        {"timeout": idle_timeout_s, "request_read_s": request_read_s},
    )
    try:
        return make_server(host, port, app, threaded=True, request_handler=handler)
    except SystemExit as e:
        # werkzeug reports "address in use" by printing and exiting; make it an error.
        raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE)) from e


def serve_in_thread(app: Any, host: str = LOOPBACK, port: int = 0, name: str = "wsgi") -> ServedApp:
    """Bind and serve `app` on a daemon thread named `name`."""
    server = bind(app, host, port)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return ServedApp(server, thread)
