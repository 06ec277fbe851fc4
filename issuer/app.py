"""The issuer's Flask application: `create_app(config)` and its blueprints.

Blueprints: `wallet` (enrolment, credential fetch, conversion), `authority` (health
records posted by the health authority, bearer token), `meta` (status, the OpenAPI
document), and the `/healthz` and `/readyz` probes (issuer.metrics; `/metrics` itself
is only on the separate operations listener). The admin JSON API and console come
from `issuer.admin.wiring` (per-admin accounts and tokens, roles, hash-chained audit
log); there is no shared admin token. Every error is a JSON body {"error": code,
"message": ...} with a 4xx (or 503 when the ledger or a key is unavailable); no
handler lets an exception escape as a 500 with a traceback. The anchor worker and the
periodic sync run as daemon threads unless disabled.
"""

from __future__ import annotations

import hmac
import logging
import threading
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from common.observability import health_blueprint, instrument
from issuer import anchor, conversion, enrolment, http_limits, lineage, replica
from issuer.admin.wiring import init_console
from issuer.config import IssuerConfig
from issuer.context import IssuerContext
from issuer.device_auth import DeviceAuth, check_order, verify_device_auth
from issuer.errors import (
    BadRequestError,
    ConversionSourceRevokedError,
    IssuerError,
    UnauthorizedError,
)
from issuer.fetch_reads import HolderView, read_fetch_state, unchanged_credential
from issuer.group_commit import GroupCommitter
from issuer.issuance import Issued, current_credential
from issuer.metrics import CHECKS_KEY, METRICS_KEY, issuer_registry, readiness_checks
from issuer.models import Holder
from issuer.residents import add_records, parse_record

log = logging.getLogger(__name__)
OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.yaml"
MAX_FIELD_CHARS = 256  # characters of a plain string field in a JSON body
MAX_RECORDS_PER_REQUEST = 1000

wallet = Blueprint("wallet", __name__, url_prefix="/v1")
authority = Blueprint("authority", __name__, url_prefix="/v1")
meta = Blueprint("meta", __name__)


def ctx() -> IssuerContext:
    c: IssuerContext = current_app.extensions["issuer"]
    return c


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequestError("expected a JSON object body")
    return data


def text_field(data: dict[str, Any], name: str, max_chars: int = MAX_FIELD_CHARS) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= max_chars:
        raise BadRequestError(f"field {name!r} must be a string of 1-{max_chars} characters")
    return value


def credential_body(issued: Issued, holder_id: str | None = None) -> dict[str, Any]:
    c = issued.credential
    out: dict[str, Any] = {
        "credential": c.jws,
        "status": {"colour": c.colour, "basis": c.basis, "expires_at": c.expires_at},
    }
    if holder_id is not None:
        out = {"holder_id": holder_id, **out}
    return out


# -- wallet -------------------------------------------------------------------------------
@wallet.post("/enrolment/code")
def enrolment_code() -> tuple[Response, int]:
    doc = text_field(body(), "document_number", 32)
    where, ttl = enrolment.request_code(ctx(), doc, request.remote_addr or "unknown")
    return jsonify({"delivery": where, "expires_in": ttl}), 202


@wallet.post("/enrolment")
def enrol() -> tuple[Response, int]:
    data = body()
    result = enrolment.enrol(
        ctx(),
        text_field(data, "document_number", 32),
        text_field(data, "code", 32),
        text_field(data, "device_key"),
        request.remote_addr or "unknown",
    )
    wake_worker()
    return jsonify(credential_body(result.issued, result.holder_id)), 201


@wallet.get("/credential")
def fetch_credential() -> tuple[Response, int]:
    c = ctx()
    auth = DeviceAuth.parse(request.headers.get("Authorization", ""))
    now = c.now()
    # Authenticate on a read snapshot (no write lock). When the header moves the
    # holder's high-water timestamp nowhere (a retry, or a request overtaken by a newer
    # one) and the current credential still fits, nothing would change: the committed
    # credential is answered without a write transaction.
    state = read_fetch_state(c, auth.holder_id, now)
    if state is None:
        raise UnauthorizedError("unknown holder")
    holder = state.holder
    verify_device_auth(
        auth,
        holder.device_key,
        request.method,
        request.path,
        now,
        c.config.device_auth_skew_s,
        holder.last_auth_ts,
        c.config.device_auth_reorder_s,
    )
    # A converted holder: its source re-checked in the synced view (a read).
    fallen = holder.source_region is not None and source_fallen(c, holder)
    if auth.timestamp <= holder.last_auth_ts and not fallen:
        same = unchanged_credential(c, state, now)
        if same is not None:
            return jsonify(credential_body(same)), 200
    holder_pk = holder.id
    if fallen:
        revoke_fallen(c, holder_pk, now)
    committer: GroupCommitter | None = current_app.extensions.get("issuer.committer")
    if committer is not None:
        # The timestamp and any re-issue are written in the shared group transaction.
        issued = committer.fetch(holder_pk, auth.timestamp, now)
    else:
        with c.sessions.begin() as s:
            row = s.get_one(Holder, holder_pk)
            # Re-checked inside the write transaction against the high-water mark a
            # concurrent request may have moved meanwhile.
            check_order(auth.timestamp, row.last_auth_ts, c.config.device_auth_reorder_s)
            row.last_auth_ts = max(row.last_auth_ts, auth.timestamp)
            issued = current_credential(c, s, row, now)
    if issued.fresh:
        wake_worker()
    return jsonify(credential_body(issued)), 200


def trust_source(c: IssuerContext) -> conversion.TrustSource | None:
    source: conversion.TrustSource | None = current_app.extensions.get("issuer.trust")
    if source is None and c.config.consortium_path is not None:
        source = conversion.trust_source_for(c)
        current_app.extensions["issuer.trust"] = source
    return source


def source_fallen(c: IssuerContext, holder: HolderView) -> bool:
    """Whether a converted holder's source is revoked (issuer.lineage), read from this
    issuer's synced view of the source region's log. Without a consortium there is no
    view: a conversion already found revoked is still refused by
    issuance.holder_status."""
    if holder.source_revoked_at is not None:
        return True
    source = trust_source(c)
    return source is not None and lineage.source_revoked(holder, source.trust())


def revoke_fallen(c: IssuerContext, holder_pk: int, now: int) -> None:
    """Revoke the conversion on this region's log and refuse the refresh (409)."""
    source = trust_source(c)
    if source is not None:
        lineage.check_holder(c, holder_pk, source.trust(), now)
        wake_worker()
    raise ConversionSourceRevokedError(
        "the credential this one was converted from was revoked in its home region"
    )


@wallet.post("/conversion")
def convert() -> tuple[Response, int]:
    data = body()
    presentation = text_field(data, "presentation", conversion.MAX_PRESENTATION_CHARS)
    device_key = data.get("device_key")
    if device_key is not None and not isinstance(device_key, str):
        raise BadRequestError("device_key must be base64url DER SPKI text")
    source = current_app.extensions.get("issuer.trust")
    if source is None:
        source = conversion.trust_source_for(ctx())
        current_app.extensions["issuer.trust"] = source
    holder_id, issued = conversion.convert(ctx(), presentation, source, device_key)
    wake_worker()
    return jsonify(credential_body(issued, holder_id)), 201


# -- health authority --------------------------------------------------------------
def require_token(path: Path) -> None:
    expected = ctx().keys.token(path)
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if (
        expected is None
        or scheme != "Bearer"
        or not hmac.compare_digest(given.strip().encode(), expected.encode())
    ):
        raise UnauthorizedError("a valid bearer token is required")


@authority.post("/records")
def post_records() -> tuple[Response, int]:
    require_token(ctx().config.authority_token_path)
    records = body().get("records")
    if not isinstance(records, list) or not 0 < len(records) <= MAX_RECORDS_PER_REQUEST:
        raise BadRequestError(f"records must be a list of 1-{MAX_RECORDS_PER_REQUEST} objects")
    items = []
    for r in records:
        if not isinstance(r, dict):
            raise BadRequestError("each record must be an object")
        items.append(parse_record(r))
    report = add_records(ctx(), items, "api")
    wake_worker()
    return jsonify(
        {"added": report.added, "unchanged": report.unchanged, "revoked": report.revoked}
    ), 200


# -- meta ------------------------------------------------------------------------------------
@meta.get("/v1/status")
def status() -> tuple[Response, int]:
    c = ctx()
    refused = [
        {"outbox_id": q.id, "kind": q.kind, "ref": q.ref, "error": q.error,
         "quarantined_at": q.quarantined_at}
        for q in anchor.quarantined(c)
    ]  # fmt: skip
    return jsonify(
        {
            "region": c.region,
            "pending_anchors": anchor.pending_count(c),
            "quarantined_anchors": anchor.quarantined_count(c),
            "quarantined": refused,
        }
    ), 200


@meta.get("/openapi.yaml")
def openapi() -> Response:
    return Response(OPENAPI_PATH.read_text(encoding="utf-8"), mimetype="application/yaml")


# -- errors and workers -----------------------------------------------------------------------
def error_body(code: str, message: str, status: int, **extra: str) -> tuple[Response, int]:
    return jsonify({"error": code, "message": message, **extra}), status


def wake_worker() -> None:
    worker = current_app.extensions.get("issuer.worker")
    if worker is not None:
        worker.wake()


def _periodic_sync(app: Flask, stop: threading.Event) -> None:
    c: IssuerContext = app.extensions["issuer"]
    while not stop.wait(c.config.sync_interval_s):
        try:
            source = app.extensions.setdefault("issuer.trust", conversion.trust_source_for(c))
            source.refresh()
        except Exception as e:  # a peer down is routine; the next round retries
            log.warning("periodic sync failed: %s", type(e).__name__)
            continue
        sweep_conversions(app, source)


def sweep_conversions(app: Flask, source: conversion.TrustSource) -> int:
    """Revoke the conversions whose source the synced view shows revoked (after every
    periodic sync: within one sync interval of the source's cosigned revocation)."""
    c: IssuerContext = app.extensions["issuer"]
    try:
        queued = lineage.sweep(c, source.trust(), int(c.now()))
    except Exception as e:  # the next round retries; a refresh also checks its holder
        log.warning("conversion sweep failed: %s", type(e).__name__)
        return 0
    if queued:
        log.info("revoked %d conversion credential(s) whose source was revoked", len(queued))
        worker = app.extensions.get("issuer.worker")
        if worker is not None:
            worker.wake()
    return len(queued)


def create_app(
    config: IssuerConfig,
    context: IssuerContext | None = None,
    ledger: anchor.LedgerPort | None = None,
    trust: conversion.TrustSource | None = None,
    start_workers: bool = True,
) -> Flask:
    app = Flask(__name__)
    http_limits.install(app)  # bounded path integers and JSON depth: 400, never 5xx
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    if config.trusted_proxies:
        # The proxy (deploy/nginx/) replaces X-Forwarded-For with the peer it saw, so
        # the last `trusted_proxies` hops are facts, anything before them is not read.
        n = config.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    c = context or IssuerContext.open(config)
    c.config = config  # a test may hand in a context opened with an earlier variant
    app.extensions["issuer"] = c
    replica.install(app, c)  # X-Issuer-Replica: an opaque name, never an address
    if trust is not None:
        app.extensions["issuer.trust"] = trust
    for bp in (wallet, authority, meta):
        app.register_blueprint(bp)
    registry = issuer_registry(c)
    checks = readiness_checks(c)
    app.extensions[METRICS_KEY] = registry
    app.extensions[CHECKS_KEY] = checks
    instrument(app, registry)
    app.register_blueprint(health_blueprint(lambda: checks))
    init_console(app)  # the admin console and per-admin API

    @app.errorhandler(IssuerError)
    def _issuer_error(e: IssuerError) -> tuple[Response, int]:
        status = 503 if e.http_status >= 500 else e.http_status
        return error_body(e.code, e.message, status, **e.extra)

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException) -> tuple[Response, int]:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            e.code or 400, "bad_request"
        )
        return error_body(code, e.description or code, e.code or 400)

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> tuple[Response, int]:
        # Never a traceback to the client; the operator log keeps the type only, since
        # the message could quote request data.
        log.error("unexpected %s on %s %s", type(e).__name__, request.method, request.path)
        return error_body("unavailable", "the issuer could not complete the request", 503)

    if config.group_commit:
        app.extensions["issuer.committer"] = GroupCommitter(c).start()
    if start_workers and config.anchor_worker:
        port = ledger or (anchor.ledger_port_for(c) if config.ledger_url else None)
        if port is not None:
            app.extensions["issuer.worker"] = anchor.AnchorWorker(c, port).start()
        if config.consortium_path is not None:
            stop = threading.Event()
            app.extensions["issuer.sync_stop"] = stop
            threading.Thread(
                target=_periodic_sync, args=(app, stop), daemon=True, name="issuer-sync"
            ).start()
    return app


def stop_app(app: Flask) -> None:
    committer = app.extensions.get("issuer.committer")
    if committer is not None:
        committer.stop()
    worker = app.extensions.get("issuer.worker")
    if worker is not None:
        worker.stop()
    stop = app.extensions.get("issuer.sync_stop")
    if stop is not None:
        stop.set()
