"""The one "serve a Flask app on a thread" helper: real HTTP on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
from flask import Flask, request

from common.serving import bind, serve_in_thread


def test_app_is_served_on_a_free_port_and_stops() -> None:
    app = Flask("t")
    app.add_url_rule("/", "root", lambda: "ok")
    with serve_in_thread(app) as served:
        assert served.port > 0
        assert requests.get(served.url + "/", timeout=5).text == "ok"
    assert not served.thread.is_alive()


def _trickling_app() -> Flask:
    app = Flask("t")
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20

    @app.post("/body")
    def body() -> str:
        return str(len(request.get_data()))

    return app


def _drip(sock: socket.socket, data: bytes, every_s: float, stop_at: float) -> bytes:
    """Send `data` a byte at a time, `every_s` apart, until the server answers or hangs
    up or `stop_at` passes; what the server sent back (b"" if it just closed)."""
    sock.setblocking(False)
    got = b""
    for byte in data:
        if time.monotonic() > stop_at:
            break
        try:
            sock.send(bytes([byte]))
        except OSError:
            break  # the server closed the connection: what it should do
        time.sleep(every_s)
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            break
        if not chunk:
            break
        got += chunk
        if b"\r\n\r\n" in got:
            break
    return got


@pytest.mark.parametrize(
    "head, body",
    [
        # slowloris: the header never ends, each byte well within the idle timeout
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000, b""),
        # the header arrives; the body trickles
        (b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n\r\n", b"b" * 4000),
    ],
    ids=["header", "body"],
)
def test_a_request_trickling_in_under_the_idle_timeout_is_cut_at_its_deadline(
    head: bytes, body: bytes
) -> None:
    # A byte every 0.2 s never trips a 1 s idle timeout; the request must still have
    # arrived whole within 1.5 s. Before, the connection (and its thread) stayed for as
    # long as the client kept dripping.
    server = bind(_trickling_app(), idle_timeout_s=1.0, request_read_s=1.5)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as sock:
            started = time.monotonic()
            if body:
                sock.sendall(head)
                answer = _drip(sock, body, 0.2, started + 10)
            else:
                answer = _drip(sock, head, 0.2, started + 10)
            elapsed = time.monotonic() - started
        assert elapsed < 4, f"still connected after {elapsed:.1f} s"
        # A cut body is the client's fault (400), never a 500; a cut header just closes.
        assert b" 500 " not in answer.split(b"\r\n", 1)[0], answer[:200]
        if body:
            assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        # The server still serves an ordinary request at once.
        r = requests.post(f"http://127.0.0.1:{server.server_port}/body", data=b"x" * 10, timeout=5)
        assert r.text == "10"
    finally:
        server.shutdown()
        server.server_close()


def test_a_large_body_arriving_steadily_within_the_deadline_is_read_whole() -> None:
    server = bind(_trickling_app(), idle_timeout_s=1.0, request_read_s=5.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        data = b"z" * (900 * 1024)
        r = requests.post(f"http://127.0.0.1:{server.server_port}/body", data=data, timeout=10)
        assert r.text == str(len(data))
        # Keep-alive: each request gets its own time.
        with requests.Session() as s:
            for _ in range(3):
                r = s.post(f"http://127.0.0.1:{server.server_port}/body", data=b"y", timeout=5)
                assert r.text == "1"
                time.sleep(0.6)
    finally:
        server.shutdown()
        server.server_close()
