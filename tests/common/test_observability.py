"""common.observability: the one logging setup (JSON, request ids, security events
once), the probes, and the separate metrics listener, over real HTTP."""

from __future__ import annotations

import io
import json
import logging

import pytest
import requests
from flask import Flask
from prometheus_client import CollectorRegistry

from common.observability import (
    REQUEST_ID_HEADER,
    NotReadyError,
    ReadinessCheck,
    SecurityEvent,
    configure_logging,
    health_blueprint,
    instrument,
    security_event,
    start_ops_server,
)


@pytest.fixture()
def json_log():
    stream = io.StringIO()
    handler = configure_logging("json", "INFO", stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def _app(checks: list[ReadinessCheck]) -> tuple[Flask, CollectorRegistry]:
    app = Flask("t")
    registry = CollectorRegistry()
    instrument(app, registry)
    app.register_blueprint(health_blueprint(lambda: checks))

    @app.get("/hello/<name>")
    def hello(name: str) -> str:
        logging.getLogger("t").info("said hello")
        return "hi"

    return app, registry


def test_every_log_line_of_a_request_carries_its_request_id(json_log) -> None:
    app, _ = _app([])
    r = app.test_client().get("/hello/x", headers={REQUEST_ID_HEADER: "abcdef0123456789"})
    assert r.headers[REQUEST_ID_HEADER] == "abcdef0123456789"
    lines = [json.loads(x) for x in json_log.getvalue().splitlines()]
    said = [x for x in lines if x["message"] == "said hello"]
    assert said and said[0]["request_id"] == "abcdef0123456789"


def test_a_request_id_that_is_not_plain_is_replaced(json_log) -> None:
    app, _ = _app([])
    r = app.test_client().get("/hello/x", headers={REQUEST_ID_HEADER: "a b; forged=1 line"})
    assert r.headers[REQUEST_ID_HEADER] != "a b; forged=1 line"
    assert len(r.headers[REQUEST_ID_HEADER]) == 32


def test_latency_is_labelled_by_route_template_not_by_requested_path() -> None:
    from prometheus_client import generate_latest

    app, registry = _app([])
    app.test_client().get("/hello/Chan Tai Man")
    app.test_client().get("/no/such/G1234567")
    text = generate_latest(registry).decode()
    assert 'route="/hello/<name>"' in text
    assert 'route="<unmatched>"' in text
    assert "Chan" not in text and "G1234567" not in text


def test_security_event_is_one_structured_line(json_log) -> None:
    security_event(logging.getLogger("t"), SecurityEvent.LEDGER_ALARM, origin="gd/log", size=3)
    (line,) = json_log.getvalue().splitlines()
    doc = json.loads(line)
    assert doc["level"] == "ERROR"
    assert doc["event"] == "ledger_alarm"
    assert doc["fields"] == {"origin": "gd/log", "size": 3}


def test_exception_messages_are_withheld_from_logs(json_log) -> None:
    personal = "resident Chan Tai Man G1234567"
    try:
        raise ValueError(personal)
    except ValueError:
        logging.getLogger("t").exception("failed")
    out = json_log.getvalue()
    assert "ValueError" in out and "Chan" not in out and "G1234567" not in out


def test_readyz_names_the_failing_check_with_503() -> None:
    def broken() -> None:
        raise NotReadyError("the database does not answer")

    def crashing() -> None:
        raise RuntimeError("boom")

    app, _ = _app([ReadinessCheck("database", broken), ReadinessCheck("x", crashing)])
    c = app.test_client()
    assert c.get("/healthz").status_code == 200
    r = c.get("/readyz")
    assert r.status_code == 503
    assert r.get_json()["checks"] == {
        "database": "the database does not answer",
        "x": "failed: RuntimeError",
    }


def test_ops_listener_serves_metrics_and_probes_only() -> None:
    registry = CollectorRegistry()
    ops = start_ops_server(registry, lambda: [], "127.0.0.1", 0)
    try:
        assert requests.get(f"{ops.url}/metrics", timeout=5).status_code == 200
        assert requests.get(f"{ops.url}/readyz", timeout=5).json()["status"] == "ready"
        assert requests.get(f"{ops.url}/v1/status", timeout=5).status_code == 404
    finally:
        ops.stop()
