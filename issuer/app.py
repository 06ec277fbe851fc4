"""The issuer's Flask application: `create_app(config)` and its blueprints.

Blueprints: `wallet` (enrolment, credential fetch, conversion), `authority` (health
records posted by the health authority, bearer token), `meta` (status, the OpenAPI
document). The admin JSON API and console come from `issuer.console` (per-admin
accounts and tokens, roles, hash-chained audit log); there is no shared admin token.
Every error
is a JSON body {"error": code, "message": ...} with a 4xx (or 503 when the ledger or
a key is unavailable); no handler lets an exception escape as a 500 with a traceback.
The anchor worker and the periodic sync run as daemon threads unless disabled.
"""

from __future__ import annotations

import hmac
import logging
import threading
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy import bindparam, select
from werkzeug.exceptions import HTTPException

from issuer import anchor, conversion, enrolment
from issuer.config import IssuerConfig
from issuer.context import IssuerContext
from issuer.device_auth import DeviceAuth, verify_device_auth
from issuer.errors import BadRequestError, IssuerError, UnauthorizedError
from issuer.group_commit import GroupCommitter
from issuer.issuance import Issued, current_credential, unchanged_credential
from issuer.models import Holder
from issuer.residents import add_records, parse_record

log = logging.getLogger(__name__)
OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.yaml"
MAX_FIELD_CHARS = 256  # characters of a plain string field in a JSON body
MAX_RECORDS_PER_REQUEST = 1000
HOLDER_BY_ID = select(Holder).where(Holder.holder_id == bindparam("holder_id"))  # built once

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
    # Authenticate on a read snapshot (no write lock). When this exact timestamp was
    # already accepted and the current credential still fits, nothing would change:
    # the committed credential is answered without a write transaction.
    with c.read_session() as s:
        holder = s.scalars(HOLDER_BY_ID, {"holder_id": auth.holder_id}).first()
        if holder is None:
            raise UnauthorizedError("unknown holder")
        verify_device_auth(
            auth,
            holder.device_key,
            request.method,
            request.path,
            now,
            c.config.device_auth_skew_s,
            holder.last_auth_ts,
        )
        if auth.timestamp == holder.last_auth_ts:
            same = unchanged_credential(c, s, holder, now)
            if same is not None:
                return jsonify(credential_body(same)), 200
        holder_pk = holder.id
    committer: GroupCommitter | None = current_app.extensions.get("issuer.committer")
    if committer is not None:
        # The timestamp and any re-issue are written in the shared group transaction.
        issued = committer.fetch(holder_pk, auth.timestamp, now)
    else:
        with c.sessions.begin() as s:
            holder = s.get_one(Holder, holder_pk)
            # Re-checked inside the write transaction: two requests racing with the
            # same or older timestamps cannot both pass (replay of a header).
            if auth.timestamp < holder.last_auth_ts:
                raise UnauthorizedError("HB-Device timestamp older than one already used")
            holder.last_auth_ts = auth.timestamp
            issued = current_credential(c, s, holder, now)
    if issued.fresh:
        wake_worker()
    return jsonify(credential_body(issued)), 200


@wallet.post("/conversion")
def convert() -> tuple[Response, int]:
    presentation = text_field(body(), "presentation", conversion.MAX_PRESENTATION_CHARS)
    source = current_app.extensions.get("issuer.trust")
    if source is None:
        source = conversion.trust_source_for(ctx())
        current_app.extensions["issuer.trust"] = source
    holder_id, issued = conversion.convert(ctx(), presentation, source)
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
            app.extensions.setdefault("issuer.trust", conversion.trust_source_for(c)).refresh()
        except Exception as e:  # a peer down is routine; the next round retries
            log.warning("periodic sync failed: %s", type(e).__name__)


def create_app(
    config: IssuerConfig,
    context: IssuerContext | None = None,
    ledger: anchor.LedgerPort | None = None,
    trust: conversion.TrustSource | None = None,
    start_workers: bool = True,
) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    c = context or IssuerContext.open(config)
    c.config = config  # a test may hand in a context opened with an earlier variant
    app.extensions["issuer"] = c
    if trust is not None:
        app.extensions["issuer.trust"] = trust
    for bp in (wallet, authority, meta):
        app.register_blueprint(bp)
    from issuer.console import init_console  # the admin console and per-admin API

    init_console(app)

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
