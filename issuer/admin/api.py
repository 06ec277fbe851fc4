"""The admin JSON API: the console's operations for scripting, per admin.

Every request carries `Authorization: Bearer hbadm_<id>_<secret>`, a per-admin API
token stored hashed (issuer.admin.accounts); cookies are ignored here, so no cross-site form
can drive it. Region-scoped resources name their region in the path
(`/v1/admin/regions/GD/credentials/17/revoke`): a token of a GD admin gets 403 on
any MO path and at MO's issuer. Errors are {"error", "message"} with a 4xx status,
through the issuer app's handlers.
"""

from __future__ import annotations

from typing import IO, Any

from flask import Blueprint, Response, current_app, jsonify, request

from credential.claims import StatusColour
from issuer.admin import accounts_db
from issuer.admin.ops import AdminOps, Who
from issuer.admin.services import PendingEntry
from issuer.audit import Channel
from issuer.errors import BadRequestError, UnauthorizedError
from issuer.http_limits import MAX_SQL_INT

api = Blueprint("admin_api", __name__, url_prefix="/v1/admin")
MAX_FIELD_CHARS = 500
MAX_AUDIT_ROWS = 1000


def ops() -> AdminOps:
    o: AdminOps = current_app.extensions["issuer.admin_ops"]
    return o


def who() -> Who:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer" or not token.strip().startswith("hbadm_"):
        raise UnauthorizedError("expected Authorization: Bearer hbadm_<id>_<secret>")
    c = ops().ctx
    p = accounts_db.authenticate_token(c.sessions, token.strip(), c.now())
    return Who(p, (request.remote_addr or "unknown")[:64], Channel.API)


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequestError("expected a JSON object body")
    return data


def text(
    data: dict[str, Any], name: str, max_chars: int = MAX_FIELD_CHARS, required: bool = True
) -> str:
    value = data.get(name, "" if not required else None)
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > max_chars:
        need = "a string" if not required else "a non-empty string"
        raise BadRequestError(f"field {name!r} must be {need} of at most {max_chars} characters")
    return value.strip()


def opt_int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SQL_INT:
        raise BadRequestError(f"field {name!r} must be Unix seconds (0-{MAX_SQL_INT}) or null")
    return value


def entry(p: PendingEntry) -> dict[str, Any]:
    return {
        "outbox_id": p.outbox_id,
        "kind": p.kind,
        "log_index": p.log_index,
        "state": "pending" if p.log_index is None else "sequenced",
    }


def detail_json(d: Any) -> dict[str, Any]:
    out = {
        k: getattr(d, k)
        for k in (
            "region",
            "credential_id",
            "status_index",
            "masked_name",
            "document_hint",
            "kid",
            "colour",
            "basis",
            "issued_at",
            "expires_at",
            "state",
            "revoke_reason",
        )
    }
    out["history"] = [
        {
            "kind": h.kind,
            "outbox_id": h.outbox_id,
            "log_index": h.log_index,
            "at": h.at,
            "state": h.state.value,
            "witnesses": list(h.witnesses),
        }
        for h in d.history
    ]
    return out


@api.get("/me")
def me() -> Response:
    w = who()
    p = w.principal
    return jsonify(
        {
            "username": p.username,
            "region": p.region,
            "roles": sorted(r.value for r in p.roles),
            "permissions": sorted(x.value for x in p.permissions()),
        }
    )


# A document number is personal data: it is searched for in a POST body, never in the
# query string, so it cannot land in access logs, proxies or shell histories.
PERSONAL_SEARCH_KEYS = ("document_number",)
SEARCH_KEYS = ("status_index", "credential_id", *PERSONAL_SEARCH_KEYS)


@api.get("/regions/<region>/credentials")
def find(region: str) -> Response:
    for by in PERSONAL_SEARCH_KEYS:
        if by in request.args:
            raise BadRequestError(
                f"search by {by} with POST .../credentials/search and a JSON body, not in "
                "the address: it must not be written to access logs"
            )
    for by in SEARCH_KEYS:
        if by in request.args:
            found = ops().find(who(), region, by, request.args[by][:64])
            return jsonify({"credentials": [detail_json(d) for d in found]})
    raise BadRequestError("give status_index or credential_id (document_number: POST search)")


@api.post("/regions/<region>/credentials/search")
def search(region: str) -> Response:
    data = body()
    for by in SEARCH_KEYS:
        if by in data:
            value = data[by]
            if by == "status_index" and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str) or not 0 < len(value) <= 64:
                raise BadRequestError(f"{by} must be a string of 1-64 characters")
            found = ops().find(who(), region, by, value)
            return jsonify({"credentials": [detail_json(d) for d in found]})
    raise BadRequestError("give status_index, credential_id or document_number")


@api.get("/regions/<region>/credentials/<int:status_index>")
def detail(region: str, status_index: int) -> Response:
    return jsonify(detail_json(ops().detail(who(), region, status_index)))


@api.post("/regions/<region>/credentials/<int:status_index>/revoke")
def revoke(region: str, status_index: int) -> tuple[Response, int]:
    w, data = who(), body()
    p = ops().revoke(
        w, region, status_index, text(data, "reason", 32), text(data, "note", required=False)
    )
    return jsonify({"entry": entry(p)}), 202


@api.post("/regions/<region>/credentials/<int:status_index>/reinstate")
def reinstate(region: str, status_index: int) -> tuple[Response, int]:
    w, data = who(), body()
    p = ops().reinstate(
        w, region, status_index, text(data, "reason", 32), text(data, "note", required=False)
    )
    return jsonify({"entry": entry(p)}), 202


@api.post("/regions/<region>/status-overrides")
def override(region: str) -> tuple[Response, int]:
    w, data = who(), body()
    raw = data.get("colour")
    try:
        colour = None if raw is None else StatusColour(str(raw))
    except ValueError as e:
        raise BadRequestError("colour must be green, yellow, red or null") from e
    ps = ops().override(
        w,
        region,
        text(data, "document_number", 32),
        colour,
        text(data, "reason"),
        opt_int(data, "until"),
    )
    return jsonify({"entries": [entry(p) for p in ps]}), 202


@api.post("/regions/<region>/bulk-revocations")
def bulk_create(region: str) -> tuple[Response, int]:
    """Body: a CSV (Content-Type text/csv, reason and note as query parameters) or JSON
    {"status_indices": [...], "reason", "note"}. Returns the preview; confirm next."""
    w = who()
    data: bytes | IO[bytes]
    if request.mimetype == "text/csv":
        # Streamed: parsed as it arrives (issuer.admin.ops.parse_bulk_csv).
        data, reason = request.stream, request.args.get("reason", "")
        note = request.args.get("note", "")
    else:
        b = body()
        indices = b.get("status_indices")
        if not isinstance(indices, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices
        ):
            raise BadRequestError("status_indices must be a list of non-negative integers")
        data = "\n".join(str(i) for i in indices).encode()
        reason, note = text(b, "reason", 32), text(b, "note", required=False)
    p = ops().bulk_preview(w, region, data, reason, note[:MAX_FIELD_CHARS])
    return jsonify(
        {
            "job_id": p.job_id,
            "total": p.total,
            "unknown": p.unknown,
            "already_revoked": p.already_revoked,
            "invalid_lines": list(p.invalid_lines),
        }
    ), 201


def job_json(s: Any) -> dict[str, Any]:
    return {
        "job_id": s.job_id,
        "state": s.state,
        "total": s.total,
        "done": s.done,
        "percent": s.percent,
        "message": s.message,
    }


@api.post("/bulk-revocations/<job_id>/confirm")
def bulk_confirm(job_id: str) -> tuple[Response, int]:
    return jsonify(job_json(ops().bulk_confirm(who(), job_id[:32]))), 202


@api.get("/bulk-revocations/<job_id>")
def bulk_status(job_id: str) -> Response:
    return jsonify(job_json(ops().bulk_status(who(), job_id[:32])))


@api.get("/keys")
def keys() -> Response:
    rows = ops().keys(who())
    return jsonify(
        {
            "keys": [
                {
                    "kid": k.kid,
                    "alg": k.alg,
                    "state": k.state,
                    "not_before": k.not_before,
                    "not_after": k.not_after,
                    "retired_at": k.retired_at,
                    "compromised_at": k.compromised_at,
                }
                for k in rows
            ]
        }
    )


@api.post("/regions/<region>/keys/rotate")
def rotate(region: str) -> tuple[Response, int]:
    return jsonify({"entries": [entry(p) for p in ops().rotate_key(who(), region)]}), 202


@api.post("/regions/<region>/keys/<kid>/revoke")
def revoke_key(region: str, kid: str) -> tuple[Response, int]:
    w, data = who(), body()
    ps = ops().revoke_key(
        w, region, kid[:64], opt_int(data, "compromised_at"), text(data, "reason")
    )
    return jsonify({"entries": [entry(p) for p in ps]}), 202


@api.get("/log-entries/<int:outbox_id>")
def entry_state(outbox_id: int) -> Response:
    st = ops().entry(who(), outbox_id)
    return jsonify(
        {
            "outbox_id": outbox_id,
            "state": st.state.value,
            "log_index": st.log_index,
            "checkpoint_size": st.checkpoint_size,
            "witnesses": list(st.witnesses),
            "quorum": st.quorum,
            "ledger_error": st.ledger_error,
        }
    )


@api.get("/ledger")
def ledger() -> Response:
    w = who()
    pending, oldest = ops().outbox_lag(w)
    regions = [
        {
            "region": r.region,
            "origin": r.origin,
            "size": r.size,
            "root": r.root_hex,
            "quorum": r.quorum,
            "quorum_met": r.quorum_met,
            "error": r.error,
            "alarm": None if r.alarm is None else str(r.alarm),
            "witnesses": [
                {
                    "member": m.member_id,
                    "name": m.name,
                    "cosigned": m.cosigned,
                    "timestamp": m.timestamp,
                }
                for m in r.witnesses
            ],
        }
        for r in ops().ledger_regions(w)
    ]
    return jsonify({"outbox_pending": pending, "outbox_oldest_s": oldest, "regions": regions})


@api.get("/audit")
def audit_rows() -> Response:
    raw_limit, raw_offset = request.args.get("limit", "100"), request.args.get("offset", "0")
    if not (raw_limit.isdigit() and raw_offset.isdigit()) or len(raw_offset) > 12:
        raise BadRequestError("limit and offset must be non-negative integers")
    rows = ops().audit_rows(who(), min(int(raw_limit), MAX_AUDIT_ROWS), int(raw_offset))
    return jsonify(
        {
            "records": [
                {
                    "seq": r.seq,
                    "at": r.at,
                    "actor": r.actor,
                    "region": r.region,
                    "action": r.action,
                    "target": r.target,
                    "detail": r.detail,
                    "address": r.address,
                    "channel": r.channel,
                    "outcome": r.outcome,
                    "row_hash": r.row_hash.hex(),
                }
                for r in rows
            ]
        }
    )


@api.get("/audit.csv")
def audit_csv() -> Response:
    return Response(ops().audit_export(who()), mimetype="text/csv")
