"""The per-admin JSON API (/v1/admin/...): bearer tokens stored hashed, region in the
path, every refusal a 4xx JSON body and an audit row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient

from issuer import audit
from issuer.admin import accounts, accounts_db
from issuer.admin.accounts import Role
from issuer.app import create_app
from issuer.context import IssuerContext
from issuer.models import CredentialRow
from issuer.testing import enrol_directly, make_context, new_device

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8192))


@pytest.fixture
def gd(tmp_path: Path) -> Iterator[IssuerContext]:
    ctx = make_context(tmp_path, "GD")
    yield ctx
    ctx.dispose()


def token_for(ctx: IssuerContext, name: str, role: Role, region: str = "GD") -> dict[str, str]:
    accounts_db.create_account(ctx.sessions, name, region, frozenset({role}), PASSWORD, 0)
    return {"Authorization": "Bearer " + accounts_db.issue_token(ctx.sessions, name, "t", 0)}


@pytest.fixture
def client(gd: IssuerContext) -> FlaskClient:
    return create_app(gd.config, context=gd, start_workers=False).test_client()


def cred(ctx: IssuerContext, doc: str = "G10000001") -> int:
    return enrol_directly(ctx, doc, new_device()).issued.credential.status_index


def test_requests_without_a_valid_token_get_401(client: FlaskClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer hbadm_AAAAAAAA_" + "A" * 43},
    ):
        r = client.get("/v1/admin/me", headers=headers)
        assert r.status_code == 401 and r.get_json()["error"] == "unauthorized"


def test_operator_revokes_through_the_api(client: FlaskClient, gd: IssuerContext) -> None:
    h = token_for(gd, "oper", Role.OPERATOR)
    idx = cred(gd)
    r = client.post(
        f"/v1/admin/regions/GD/credentials/{idx}/revoke",
        headers=h,
        json={"reason": "fraud", "note": "n"},
    )
    assert r.status_code == 202, r.get_json()
    entry = r.get_json()["entry"]
    assert entry["state"] == "pending"
    r = client.get(f"/v1/admin/regions/GD/credentials/{idx}", headers=h)
    body = r.get_json()
    assert body["state"] == "revoked"
    assert [h["kind"] for h in body["history"]] == ["credential_anchored", "credential_revoked"]
    state = client.get(f"/v1/admin/log-entries/{entry['outbox_id']}", headers=h).get_json()
    assert state["state"] == "pending"
    with gd.sessions() as s:
        last = audit.rows(s, 1)[0]
    assert (last.actor, last.action, last.channel, last.outcome) == ("oper", "revoke", "api", "ok")


def test_gd_token_is_refused_on_mo_paths(client: FlaskClient, gd: IssuerContext) -> None:
    h = token_for(gd, "oper", Role.OPERATOR)
    idx = cred(gd)
    for method, path, body in (
        ("post", f"/v1/admin/regions/MO/credentials/{idx}/revoke", {"reason": "fraud"}),
        ("get", f"/v1/admin/regions/MO/credentials/{idx}", None),
        ("post", "/v1/admin/regions/MO/keys/rotate", None),
        (
            "post",
            "/v1/admin/regions/MO/bulk-revocations",
            {"status_indices": [idx], "reason": "fraud"},
        ),
    ):
        r = getattr(client, method)(path, headers=h, json=body)
        assert r.status_code == 403, (path, r.get_json())
        assert r.get_json()["error"] == "permission_denied"
    with gd.sessions() as s:
        assert s.query(CredentialRow).filter_by(status_index=idx).one().state == "active"


def test_mo_admin_token_is_refused_at_the_gd_issuer(client: FlaskClient, gd: IssuerContext) -> None:
    h = token_for(gd, "moop", Role.OPERATOR, region="MO")
    idx = cred(gd)
    r = client.post(
        f"/v1/admin/regions/GD/credentials/{idx}/revoke", headers=h, json={"reason": "fraud"}
    )
    assert r.status_code == 403


def test_viewer_token_cannot_revoke_or_rotate(client: FlaskClient, gd: IssuerContext) -> None:
    h = token_for(gd, "viewer", Role.VIEWER)
    idx = cred(gd)
    r = client.post(
        f"/v1/admin/regions/GD/credentials/{idx}/revoke", headers=h, json={"reason": "fraud"}
    )
    assert r.status_code == 403
    assert client.post("/v1/admin/regions/GD/keys/rotate", headers=h).status_code == 403
    assert client.get("/v1/admin/keys", headers=h).status_code == 200


def test_console_cookie_does_not_authenticate_the_api(
    client: FlaskClient, gd: IssuerContext
) -> None:
    token_for(gd, "oper", Role.OPERATOR)
    sid = accounts_db.start_session(gd.sessions, "oper", "127.0.0.1", gd.now())
    client.set_cookie("hb_console", sid)
    assert client.get("/v1/admin/me").status_code == 401


def test_bulk_revocation_preview_confirm_and_progress(
    client: FlaskClient, gd: IssuerContext
) -> None:
    h = token_for(gd, "oper", Role.OPERATOR)
    idx = [cred(gd, f"G1000000{i}") for i in (2, 3, 4)]
    r = client.post(
        "/v1/admin/regions/GD/bulk-revocations",
        headers=h,
        json={"status_indices": [*idx, 424242], "reason": "fraud"},
    )
    assert r.status_code == 201
    preview = r.get_json()
    assert (preview["total"], preview["unknown"]) == (4, 1)
    client.application.extensions["issuer.admin_ops"].on_change = lambda: None
    r = client.post(f"/v1/admin/bulk-revocations/{preview['job_id']}/confirm", headers=h)
    assert r.status_code == 202
    import time

    for _ in range(100):
        s = client.get(f"/v1/admin/bulk-revocations/{preview['job_id']}", headers=h).get_json()
        if s["state"] == "finished":
            break
        time.sleep(0.05)
    assert s["state"] == "finished" and s["percent"] == 100
    # A second confirmation of the same job is refused.
    r = client.post(f"/v1/admin/bulk-revocations/{preview['job_id']}/confirm", headers=h)
    assert r.status_code == 400


@pytest.mark.parametrize(
    "body", [None, [], {"reason": 5}, {"reason": "x" * 40}, {"reason": "not_a_reason"}]
)
def test_malformed_bodies_get_400_json(
    client: FlaskClient, gd: IssuerContext, body: object
) -> None:
    h = token_for(gd, "oper", Role.OPERATOR)
    idx = cred(gd)
    r = client.post(f"/v1/admin/regions/GD/credentials/{idx}/revoke", headers=h, json=body)
    assert r.status_code == 400 and r.get_json()["error"] == "bad_request"


def test_audit_endpoints_are_for_auditors(client: FlaskClient, gd: IssuerContext) -> None:
    op = token_for(gd, "oper", Role.OPERATOR)
    aud = token_for(gd, "auditor", Role.AUDITOR)
    assert client.get("/v1/admin/audit", headers=op).status_code == 403
    r = client.get("/v1/admin/audit", headers=aud)
    assert r.status_code == 200 and r.get_json()["records"][0]["outcome"] == "denied"
    assert client.get("/v1/admin/audit.csv", headers=aud).mimetype == "text/csv"


def test_document_number_in_the_query_string_is_refused_and_search_takes_it_in_the_body(
    client: FlaskClient, gd: IssuerContext
) -> None:
    """A document number in a URL ends up in the access log of every server and proxy
    on the way: the API refuses it there and takes it in a POST body instead."""
    h = token_for(gd, "viewer", Role.VIEWER)
    idx = cred(gd, "G10000002")
    r = client.get("/v1/admin/regions/GD/credentials?document_number=G10000002", headers=h)
    assert r.status_code == 400 and "POST" in r.get_json()["message"]
    r = client.post(
        "/v1/admin/regions/GD/credentials/search",
        headers=h,
        json={"document_number": "G10000002"},
    )
    assert r.status_code == 200, r.get_json()
    assert [c["status_index"] for c in r.get_json()["credentials"]] == [idx]
    assert "G10000002" not in r.get_data(as_text=True)
    for bad in ({}, {"document_number": 5}, {"document_number": ""}, [1]):
        r = client.post("/v1/admin/regions/GD/credentials/search", headers=h, json=bad)
        assert r.status_code == 400
    r = client.get(f"/v1/admin/regions/GD/credentials?status_index={idx}", headers=h)
    assert r.status_code == 200 and len(r.get_json()["credentials"]) == 1
