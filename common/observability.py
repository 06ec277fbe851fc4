"""What every long-running HealthBridge service shares for operation: one logging setup
(text or JSON, a request id per request), security events logged once in one shape,
HTTP request metrics, the `/healthz` and `/readyz` probes, and the separate operations
listener that serves `/metrics` (Prometheus text format) next to the probes.

It lives in `common/`, which every service may import (docs/architecture.md: issuer
and verifier depend on ledger, ledger depends on nothing of ours); it holds no domain
logic. Each service builds its own `CollectorRegistry` (the demo runs two nodes and two
issuers in one process, so the global default registry would mix them) and hands it,
with its readiness checks, to `instrument()` and `OpsServer`.

What it does not: decide what a service measures (ledger.metrics, issuer.metrics,
verifier.metrics do), or expose `/metrics` on a public port: the operations listener is
its own port, which deployments keep off the public network.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import IO, Any

from flask import Blueprint, Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest

# -- logging ------------------------------------------------------------------------------

LOG_FORMAT_ENV = "HEALTHBRIDGE_LOG_FORMAT"  # "text" (default) or "json"
LOG_LEVEL_ENV = "HEALTHBRIDGE_LOG_LEVEL"  # a logging level name, default INFO
REQUEST_ID_HEADER = "X-Request-ID"
# An incoming request id is kept only when it is short and plain (it goes into logs).
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_HANDLER_MARK = "_healthbridge_handler"

_request_id: ContextVar[str | None] = ContextVar("healthbridge_request_id", default=None)


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def current_request_id() -> str | None:
    """The id of the HTTP request being served by this thread, if any."""
    return _request_id.get()


def is_plain_request_id(text: str) -> bool:
    """Whether `text` may be kept as a request id: 8-64 characters of A-Z a-z 0-9 . _ -
    (it is written into logs, so nothing that could end a line, forge a field or carry
    a terminal escape gets through)."""
    return REQUEST_ID_RE.fullmatch(text) is not None


@contextmanager
def request_id_scope(rid: str) -> Iterator[str]:
    """Run a piece of background work (an anchoring batch, say) under the correlation id
    `rid`: its log lines carry it and the calls it makes to other services send it
    (`outgoing_headers`), as a request's would."""
    if not is_plain_request_id(rid):
        raise ValueError(f"expected 8-64 characters of [A-Za-z0-9._-], found {rid!r}")
    token = _request_id.set(rid)
    try:
        yield rid
    finally:
        _request_id.reset(token)


def outgoing_headers() -> dict[str, str]:
    """The headers a call to another service carries: the current request (or
    background work) id as `X-Request-ID`, so one id is seen at both ends."""
    rid = _request_id.get()
    return {REQUEST_ID_HEADER: rid} if rid is not None else {}


class RequestIdFilter(logging.Filter):
    """Stamps every record with the current request id ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and the
    structured fields of a security event (`event`, `fields`)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or _request_id.get()
        if rid and rid != "-":
            out["request_id"] = rid
        event = getattr(record, "event", None)
        if event is not None:
            out["event"] = str(event)
            out["fields"] = getattr(record, "fields", {})
        if record.exc_info and record.exc_info[0] is not None:
            out["exception"] = _exception_text(record.exc_info)
        return json.dumps(out, ensure_ascii=False, sort_keys=False, default=str)


def _exception_text(ei: Any) -> str:
    """An exception's type and frames, without its message: messages can quote request
    data (a name in a database error, say), the frames say where it happened."""
    if not ei or ei[0] is None:
        return ""
    frames = "".join(traceback.format_tb(ei[2])) if ei[2] is not None else ""
    return f"{ei[0].__module__}.{ei[0].__qualname__} (message withheld)\n{frames}".rstrip()


class TextFormatter(logging.Formatter):
    """The plain format; an exception shows its type and frames, not its message."""

    def formatException(self, ei: Any) -> str:
        return _exception_text(ei)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of each record, so a command run
    in-process with its output captured (the demo's, a test runner's) never leaves a
    handler pointing at a closed stream."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def configure_logging(
    fmt: str | None = None, level: str | int | None = None, stream: IO[str] | None = None
) -> logging.Handler:
    """Install the one HealthBridge handler on the root logger (idempotent: a second
    call replaces the first handler). Format and level default to the environment
    (HEALTHBRIDGE_LOG_FORMAT, HEALTHBRIDGE_LOG_LEVEL), then text and INFO."""
    chosen = LogFormat(fmt or os.environ.get(LOG_FORMAT_ENV) or LogFormat.TEXT)
    lvl = level if level is not None else os.environ.get(LOG_LEVEL_ENV, "INFO")
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_MARK, False):
            root.removeHandler(h)
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    setattr(handler, _HANDLER_MARK, True)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        JsonFormatter() if chosen is LogFormat.JSON else TextFormatter(TEXT_FORMAT)
    )
    root.addHandler(handler)
    root.setLevel(lvl.upper() if isinstance(lvl, str) else lvl)
    # werkzeug's access log lines carry full query strings; requests are measured and
    # identified by our own hooks instead.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return handler


class SecurityEvent(StrEnum):
    """Security-relevant events: each is logged exactly once, where it is decided."""

    LOGIN_REFUSED = "login_refused"
    PERMISSION_REFUSED = "permission_refused"
    WRITER_REFUSED = "writer_refused"  # a ledger submission without a valid writer key
    WITNESS_REFUSED = "witness_refused"  # this node's witness refused a checkpoint
    LEDGER_ALARM = "ledger_alarm"  # fork / inconsistency evidence recorded
    STATION_ALARM = "station_alarm"  # a station's sync saw a fork or rollback


def security_event(logger: logging.Logger, event: SecurityEvent, **fields: str | int) -> None:
    """Log one security event with structured fields. Callers pass identifiers that are
    not personal data (usernames of admins, key names, origins, reason codes), never a
    resident's name or document number. Alarms are errors; refusals are warnings."""
    level = logging.ERROR if event in _ALARMS else logging.WARNING
    detail = " ".join(f"{k}={v}" for k, v in fields.items())
    logger.log(
        level,
        "security event %s %s",
        event.value,
        detail,
        extra={"event": event.value, "fields": dict(fields)},
    )


_ALARMS = frozenset({SecurityEvent.LEDGER_ALARM, SecurityEvent.STATION_ALARM})

# -- request metrics and ids --------------------------------------------------------------

# Seconds; from a cached tile (sub-millisecond) to a slow submission batch.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"  # 404s: the raw path could carry anything
access_log = logging.getLogger("healthbridge.access")


def instrument(app: Flask, registry: CollectorRegistry) -> None:
    """Give every request of `app` a request id (kept from X-Request-ID when plain,
    echoed back) and observe its latency by route template, method and status. The
    route label is the URL rule (`/tile/<path:subpath>`), never the requested path, so
    no value from a request ever becomes a label."""
    hist = Histogram(
        "healthbridge_http_request_duration_seconds",
        "HTTP request latency by route template, method and status code.",
        ["route", "method", "status"],
        registry=registry,
        buckets=LATENCY_BUCKETS,
    )

    @app.before_request
    def _start() -> None:
        # A caller's id is kept only when plain (is_plain_request_id): anything else,
        # a hostile value included, is replaced and never reaches a log line.
        given = request.headers.get(REQUEST_ID_HEADER, "")
        rid = given if is_plain_request_id(given) else uuid.uuid4().hex
        g.healthbridge_request = (time.perf_counter(), _request_id.set(rid), rid)

    @app.after_request
    def _finish(resp: Response) -> Response:
        started = g.get("healthbridge_request")
        if started is None:
            return resp
        t0, _token, rid = started
        rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        took = time.perf_counter() - t0
        hist.labels(rule, method, str(resp.status_code)).observe(took)
        resp.headers[REQUEST_ID_HEADER] = rid
        # One access line per request, by route template (never the path or query,
        # which may carry anything), at DEBUG: a busy node serves thousands a second.
        # It names the request id (the caller's when plain) to follow one call across
        # services.
        access_log.debug(
            "%s %s %d %.1f ms", method, rule, resp.status_code, took * 1000.0,
            extra={"request_id": rid},
        )  # fmt: skip
        return resp

    @app.teardown_request
    def _clear(_exc: BaseException | None) -> None:
        started = g.pop("healthbridge_request", None)
        if started is not None:
            try:
                _request_id.reset(started[1])
            except ValueError:  # torn down in another context (a streamed response)
                _request_id.set(None)


# -- health ------------------------------------------------------------------------------


class NotReadyError(Exception):
    """A readiness check failed; the message says what is missing (no secrets)."""


@dataclass(frozen=True)
class ReadinessCheck:
    """One named condition of `/readyz`: `probe()` returns or raises."""

    name: str
    probe: Callable[[], None]


def run_checks(checks: Iterable[ReadinessCheck]) -> tuple[bool, dict[str, str]]:
    """Run every check; (all passed, {name: "ok" or why not})."""
    results: dict[str, str] = {}
    for c in checks:
        try:
            c.probe()
        except NotReadyError as e:
            results[c.name] = str(e) or "not ready"
        except Exception as e:  # a probe's own failure is "not ready", never a 500
            results[c.name] = f"failed: {type(e).__name__}"
        else:
            results[c.name] = "ok"
    return all(v == "ok" for v in results.values()), results


ChecksSource = Callable[[], Sequence[ReadinessCheck]]


def health_blueprint(checks: ChecksSource, name: str = "healthbridge_health") -> Blueprint:
    """`GET /healthz`: 200 while the process serves. `GET /readyz`: 200 when every
    readiness check passes, else 503 with each check's result."""
    bp = Blueprint(name, __name__)

    @bp.get("/healthz")
    def healthz() -> Response:
        resp = jsonify(status="alive")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @bp.get("/readyz")
    def readyz() -> Response:
        ok, results = run_checks(checks())
        resp = jsonify(status="ready" if ok else "not_ready", checks=results)
        resp.status_code = 200 if ok else 503
        resp.headers["Cache-Control"] = "no-store"
        return resp

    return bp


# -- the operations listener ---------------------------------------------------------------


def ops_app(registry: CollectorRegistry, checks: ChecksSource) -> Flask:
    """`/metrics`, `/healthz`, `/readyz`: the app of the separate operations port."""
    app = Flask("healthbridge.ops", static_folder=None)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    app.register_blueprint(health_blueprint(checks))

    @app.errorhandler(404)
    @app.errorhandler(405)
    def _not_here(e: Any) -> tuple[Response, int]:
        return jsonify(error="not_found", message="only /metrics, /healthz, /readyz here"), 404

    return app


class OpsServer:
    """The operations listener in a daemon thread (threaded werkzeug server)."""

    def __init__(
        self, registry: CollectorRegistry, checks: ChecksSource, host: str, port: int
    ) -> None:
        from werkzeug.serving import make_server

        self.app = ops_app(registry, checks)
        self.server = make_server(host, port, self.app, threaded=True)
        self.host = host
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="ops-listener", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> OpsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_ops_server(
    registry: CollectorRegistry, checks: ChecksSource, host: str, port: int
) -> OpsServer:
    """Listen on host:port (0: any free port) for `/metrics` and the probes."""
    return OpsServer(registry, checks, host, port).start()


def static_checks(checks: Sequence[ReadinessCheck]) -> ChecksSource:
    return lambda: checks
