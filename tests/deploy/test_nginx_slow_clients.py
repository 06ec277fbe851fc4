"""Slow clients against the issuer as docker-compose publishes it: gunicorn with two
sync workers behind the buffering nginx of deploy/nginx/issuer.conf.template (Debian's
nginx, started here on loopback). Fifty clients that trickle headers or bodies one
byte at a time, or never read, must not slow ordinary clients: p99 under 1 s. The
control shows slow clients of the same kinds starve a gunicorn worker when nothing is
in front."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from issuer.admin import accounts_db
from issuer.admin.accounts import Role
from issuer.config import load_config
from issuer.context import IssuerContext
from tests.deploy.nginx_proxy import gunicorn_issuer, nginx_proxy

SLOW_CLIENTS = 50
PROBE_S = 6.0  # seconds of ordinary traffic while the slow clients hang on
P99_LIMIT_S = 1.0
TRICKLE_EVERY_S = 0.5  # seconds between two bytes of a slow client

pytestmark = pytest.mark.slow


class SlowClients:
    """Sockets that send a request one byte at a time (header or body), or send a
    request and never read the answer."""

    def __init__(self, host_port: str, n: int) -> None:
        host, port = host_port.rsplit(":", 1)
        self.addr = (host, int(port))
        self.n = n
        self.socks: list[tuple[socket.socket, bytes]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> SlowClients:
        body = b'{"document_number": "G10000001"}'
        for i in range(self.n):
            s = socket.create_connection(self.addr, timeout=5)
            kind = i % 3
            if kind == 0:  # slowloris: an endless header
                s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
                rest = b"X-Slow: " + b"a" * 10_000
            elif kind == 1:  # a body that never finishes arriving
                s.sendall(
                    b"POST /v1/enrolment/code HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n" + body[:5]
                )
                rest = b" " * 60_000
            else:  # a reader that never reads (tiny receive window)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
                s.sendall(b"GET /openapi.yaml HTTP/1.1\r\nHost: x\r\n\r\n" * 20)
                rest = b""
            self.socks.append((s, rest))
        self.thread.start()
        return self

    def _trickle(self) -> None:
        pos = 0
        while not self.stop.wait(TRICKLE_EVERY_S):
            for s, rest in self.socks:
                if pos < len(rest):
                    # The server may give up on a slow client: that is allowed.
                    with contextlib.suppress(OSError):
                        s.send(rest[pos : pos + 1])
            pos += 1

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        for s, _ in self.socks:
            s.close()


def probe(base: str, seconds: float) -> list[float]:
    """Ordinary clients, one new connection per request; latencies in seconds."""
    out: list[float] = []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        if i % 2:
            r = requests.post(
                f"{base}/v1/enrolment/code", json={"document_number": "ZZ0000000"}, timeout=10
            )
            assert r.status_code in (202, 404, 429), r.text
        else:
            r = requests.get(f"{base}/v1/status", timeout=10)
            assert r.status_code == 200, r.text
        out.append(time.monotonic() - t0)
        i += 1
    return out


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


ISSUER_DIRS: dict[str, Path] = {}


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # One issuer for the module (start-up is the slow part); the control test runs
    # its own.
    tmp = tmp_path_factory.mktemp("issuer")
    with gunicorn_issuer(tmp, workers=2, trusted_proxies=1) as upstream:
        ISSUER_DIRS[upstream] = tmp
        yield upstream


def test_fifty_slow_clients_do_not_slow_ordinary_ones_behind_nginx(issuer: str) -> None:
    with nginx_proxy(issuer) as base:
        with SlowClients(base.removeprefix("http://"), SLOW_CLIENTS):
            time.sleep(1.0)  # the slow clients are all in the middle of their requests
            latencies = probe(base, PROBE_S)
        ordered = sorted(latencies)
        print(  # the figures docs/performance.md quotes (pytest -s)
            f"\n[slow clients] {SLOW_CLIENTS} slow, {len(ordered)} probes: "
            f"p50 {ordered[len(ordered) // 2] * 1000:.0f} ms, p99 {p99(ordered) * 1000:.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms"
        )
        assert len(latencies) >= 20, latencies
        assert p99(latencies) < P99_LIMIT_S, ordered[-5:]
        # And the proxy still serves once they are gone.
        assert requests.get(f"{base}/v1/status", timeout=5).status_code == 200


def test_forged_forwarded_for_is_replaced_by_the_proxy(issuer: str) -> None:
    with nginx_proxy(issuer) as base:
        # The enrolment-code limit per address counts the real peer, whatever the
        # client claims: 30 requests from "different" forged addresses hit one limit.
        codes = [
            requests.post(
                f"{base}/v1/enrolment/code",
                json={"document_number": f"ZZ{i:07d}"},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
                timeout=10,
            ).status_code
            for i in range(40)
        ]
    assert 429 in codes, codes


def test_bulk_upload_of_100000_rows_passes_the_proxy(issuer: str) -> None:
    ctx = IssuerContext.open(load_config(ISSUER_DIRS[issuer] / "issuer.toml"))
    try:
        accounts_db.create_account(
            ctx.sessions, "oper", "GD", frozenset({Role.OPERATOR}), "x" * 12, ctx.now()
        )
        token = accounts_db.issue_token(ctx.sessions, "oper", "t", ctx.now())
    finally:
        ctx.dispose()
    body = "".join(f"{i}\n" for i in range(1_000_000, 1_100_000)).encode()
    with nginx_proxy(issuer) as base:
        r = requests.post(
            f"{base}/v1/admin/regions/GD/bulk-revocations?reason=fraud",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
            timeout=60,
        )
        assert r.status_code == 201, r.text[:300]
        assert r.json()["total"] == 100_000
        # Everywhere else the proxy keeps the general 64 KiB limit.
        r = requests.post(f"{base}/v1/enrolment/code", data=b" " * 100_000, timeout=10)
        assert r.status_code == 413


def test_control_slow_clients_starve_gunicorn_without_the_proxy(tmp_path: Path) -> None:
    # gunicorn's gthread worker reads a request to its end in one of its 8 threads, so
    # slow clients that trickle headers or bodies hold every thread and the probe waits
    # in the queue behind them. One worker of its own: with two, the kernel shares
    # connections between the workers as scheduling allows, and on a busy machine one of
    # them can be left with free threads however many slow clients there are.
    with (
        gunicorn_issuer(tmp_path, workers=1) as upstream,
        SlowClients(upstream, 8 * 3 * 2),  # 32 of them hold a thread; 8 would do
    ):
        time.sleep(1.0)
        with pytest.raises(requests.RequestException):
            requests.get(f"http://{upstream}/v1/status", timeout=3)
