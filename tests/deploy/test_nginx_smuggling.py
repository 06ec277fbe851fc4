"""Request smuggling through deploy/nginx/issuer.conf.template, over raw sockets.

Debian's nginx in front of `healthbridge issuer serve --workers 2` (gunicorn), as in
docker-compose. Each request below hides a second request ("GET /smuggled") in its
body behind an ambiguous length: both Content-Length and Transfer-Encoding, an
obfuscated or repeated Transfer-Encoding, two Content-Lengths. nginx must refuse it or
frame it one way (it buffers the whole body and sends the upstream one Content-Length),
so the hidden request never reaches gunicorn: neither as a second answer on the
attacker's connection nor glued to the next client's request on a reused upstream
connection (every later ordinary request still gets its own 200).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.deploy.nginx_proxy import gunicorn_issuer, nginx_proxy

pytestmark = pytest.mark.slow

HIDDEN = b"GET /smuggled HTTP/1.1\r\nHost: x\r\nX-Ignore: "

ATTACKS = {
    # CL.TE: the front reads Content-Length, the back chunked (or the other way round).
    "cl-and-te": (
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n",
        b"0\r\n\r\n" + HIDDEN,
    ),
    "te-obfuscated": (
        b"Content-Length: %d\r\nTransfer-Encoding : chunked\r\n",
        b"0\r\n\r\n" + HIDDEN,
    ),
    "te-xchunked": (
        b"Content-Length: %d\r\nTransfer-Encoding: xchunked\r\n",
        b"0\r\n\r\n" + HIDDEN,
    ),
    "te-twice": (
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        b"0\r\n\r\n" + HIDDEN,
    ),
    "two-content-lengths": (b"Content-Length: %d\r\nContent-Length: 5\r\n", b"{}\r\n\r\n" + HIDDEN),
}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("issuer")
    with (
        gunicorn_issuer(tmp, workers=2, trusted_proxies=1) as upstream,
        nginx_proxy(upstream) as base,
    ):
        yield base


def _raw(base: str, request: bytes) -> bytes:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(request)
        chunks: list[bytes] = []
        try:
            while True:
                got = s.recv(65536)
                if not got:
                    break
                chunks.append(got)
        except TimeoutError:
            pass
    return b"".join(chunks)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_request_smuggled_through_nginx_never_reaches_the_issuer(proxy: str, attack: str) -> None:
    headers, body = ATTACKS[attack]
    head = b"POST /v1/enrolment/code HTTP/1.1\r\nHost: localhost\r\n"
    head += b"Content-Type: application/json\r\n" + (headers % len(body))
    answer = _raw(proxy, head + b"Connection: close\r\n\r\n" + body)
    # One answer at most, and never the hidden request's.
    assert answer.count(b"HTTP/1.1 ") <= 1, answer[:600]
    assert b"/smuggled" not in answer
    status = int(answer.split(b" ", 2)[1]) if answer else 0
    print(f"\n[smuggling] {attack}: {status}")  # the figures the docs quote (pytest -s)
    assert status in (0, 400, 404, 411, 415, 429, 501), answer[:600]
    # The next clients (reusing nginx's keep-alive upstream connections) get their own.
    for _ in range(8):
        r = requests.get(f"{proxy}/v1/status", timeout=5)
        assert r.status_code == 200 and r.json()["region"] == "GD", r.text[:300]
