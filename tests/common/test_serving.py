"""The one "serve a Flask app on a thread" helper: real HTTP on a free loopback port."""

from __future__ import annotations

import requests
from flask import Flask

from common.serving import serve_in_thread


def test_app_is_served_on_a_free_port_and_stops() -> None:
    app = Flask("t")
    app.add_url_rule("/", "root", lambda: "ok")
    with serve_in_thread(app) as served:
        assert served.port > 0
        assert requests.get(served.url + "/", timeout=5).text == "ok"
    assert not served.thread.is_alive()
