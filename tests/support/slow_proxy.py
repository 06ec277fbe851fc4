"""A slow proxy in front of a node: every GET forwarded, each answer held before it is
sent (at a normal pace once it starts), every path recorded.

No tests here; the slow-source sync and station tests import it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import requests
from flask import Flask, Response, request

from tests.support.joint_world import Server


@dataclass
class SlowProxy:
    """Forwards every GET to `upstream`, holding each answer `delay_s` first."""

    upstream: str
    delay_s: float
    server: Server
    seen: list[str]
    lock: threading.Lock

    @property
    def url(self) -> str:
        return self.server.url

    def requests(self) -> int:
        with self.lock:
            return len(self.seen)

    def reset(self) -> None:
        with self.lock:
            self.seen.clear()

    def close(self) -> None:
        self.server.close()


def slow_proxy(upstream: str, delay_s: float) -> SlowProxy:
    """Start a proxy to `upstream` on a loopback port (close() it at teardown)."""
    app = Flask("slow-node")
    proxy = SlowProxy(upstream, delay_s, Server(app), [], threading.Lock())

    @app.get("/<path:path>")
    def forward(path: str) -> Response:
        with proxy.lock:
            proxy.seen.append(request.path)
        answer = requests.get(f"{upstream}/{path}", timeout=10)
        time.sleep(proxy.delay_s)
        return Response(
            answer.content,
            status=answer.status_code,
            content_type=answer.headers.get("Content-Type", "application/octet-stream"),
        )

    proxy.server.start()
    return proxy
