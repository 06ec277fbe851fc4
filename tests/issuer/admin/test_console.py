"""The admin console through Flask's test client: login, CSRF, roles, region scoping,
revoke / reinstate / bulk / keys / audit pages (browser tests: test_console_browser)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from issuer import audit
from issuer.admin import accounts_db
from issuer.admin.accounts import Role
from issuer.app import create_app
from issuer.context import IssuerContext
from issuer.models import CredentialRow, OutboxRow
from issuer.testing import enrol_directly, make_context, new_device

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    # The production cost (issuer.admin.accounts) is tested in test_admin_accounts; here it
    # would only slow every login down.
    from argon2 import PasswordHasher

    from issuer.admin import accounts

    monkeypatch.setattr(accounts, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8192))


@pytest.fixture
def gd(tmp_path: Path) -> Iterator[IssuerContext]:
    ctx = make_context(tmp_path, "GD")
    for name, role in (
        ("oper", Role.OPERATOR),
        ("viewer", Role.VIEWER),
        ("keyadmin", Role.KEY_ADMIN),
        ("auditor", Role.AUDITOR),
    ):
        accounts_db.create_account(ctx.sessions, name, "GD", frozenset({role}), PASSWORD, 0)
    accounts_db.create_account(ctx.sessions, "moop", "MO", frozenset({Role.OPERATOR}), PASSWORD, 0)
    yield ctx
    ctx.dispose()


@pytest.fixture
def client(gd: IssuerContext) -> FlaskClient:
    app = create_app(gd.config, context=gd, start_workers=False)
    return app.test_client()


def csrf(client: FlaskClient, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def login(client: FlaskClient, user: str) -> None:
    token = csrf(client, "/console/login")
    r = client.post(
        "/console/login", data={"username": user, "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 302, r.get_data(as_text=True)


def credential(ctx: IssuerContext, doc: str = "G10000001") -> int:
    return enrol_directly(ctx, doc, new_device()).issued.credential.status_index


def test_pages_need_login_and_cookie_is_hardened(client: FlaskClient) -> None:
    r = client.get("/console/credentials")
    assert r.status_code == 302 and "/console/login" in r.headers["Location"]
    login(client, "viewer")
    cookie = client.get_cookie("hb_console", path="/console")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"
    assert client.get("/console/credentials").status_code == 200


def test_form_post_without_csrf_token_is_refused(client: FlaskClient, gd: IssuerContext) -> None:
    idx = credential(gd)
    login(client, "oper")
    r = client.post(f"/console/credentials/GD/{idx}/revoke", data={"reason": "fraud"})
    assert r.status_code == 400 and "not sent by this console" in r.get_data(as_text=True)
    r = client.post("/console/login", data={"username": "oper", "password": PASSWORD})
    assert r.status_code == 400
    with gd.sessions() as s:
        assert s.query(CredentialRow).filter_by(status_index=idx).one().state == "active"


def test_operator_revokes_and_reinstates(client: FlaskClient, gd: IssuerContext) -> None:
    idx = credential(gd)
    login(client, "oper")
    page = f"/console/credentials/GD/{idx}"
    r = client.post(
        f"{page}/revoke",
        data={"reason": "fraud", "note": "forged record", "csrf_token": csrf(client, page)},
    )
    assert r.status_code == 302
    html = client.get(page).get_data(as_text=True)
    assert "revoked" in html and "pending" in html and "fraud" in html
    r = client.post(
        f"{page}/reinstate", data={"reason": "revoked_in_error", "csrf_token": csrf(client, page)}
    )
    assert r.status_code == 302
    with gd.sessions() as s:
        assert s.query(CredentialRow).filter_by(status_index=idx).one().state == "active"
        actions = [(r.actor, r.action, r.channel, r.outcome) for r in audit.rows(s)]
        assert audit.verify_all(s) == len(actions)
    assert ("oper", "revoke", "console", "ok") in actions
    with gd.sessions() as s:  # the audit log's head was queued for the region's log
        assert s.query(OutboxRow).filter_by(kind=audit.AUDIT_DIGEST_KIND).count() == 1
    assert ("oper", "reinstate", "console", "ok") in actions


def test_viewer_cannot_revoke(client: FlaskClient, gd: IssuerContext) -> None:
    idx = credential(gd)
    login(client, "viewer")
    page = f"/console/credentials/GD/{idx}"
    html = client.get(page).get_data(as_text=True)
    assert '/revoke"' not in html and ">Revoke</button>" not in html  # no button for a viewer...
    r = client.post(f"{page}/revoke", data={"reason": "fraud", "csrf_token": csrf(client, page)})
    assert r.status_code == 403  # ...and a hand-made post is refused
    with gd.sessions() as s:
        assert s.query(CredentialRow).filter_by(status_index=idx).one().state == "active"
        assert audit.rows(s, 1)[0].outcome == "denied"


def test_gd_admin_is_refused_on_mo_credentials(client: FlaskClient, gd: IssuerContext) -> None:
    idx = credential(gd)
    login(client, "oper")
    token = csrf(client, "/console/credentials")
    assert client.get(f"/console/credentials/MO/{idx}").status_code == 403
    r = client.post(
        f"/console/credentials/MO/{idx}/revoke", data={"reason": "fraud", "csrf_token": token}
    )
    assert r.status_code == 403 and "act on GD only" in r.get_data(as_text=True)
    r = client.post(
        "/console/keys/rotate", data={"region": "MO", "confirm": "yes", "csrf_token": token}
    )
    assert r.status_code == 403


def test_mo_account_cannot_log_into_gd_console_to_act(
    client: FlaskClient, gd: IssuerContext
) -> None:
    idx = credential(gd)
    login(client, "moop")  # the account exists in this database, but belongs to MO
    assert client.get("/console/credentials?by=status_index&q=1").status_code == 403
    page = "/console/login"
    r = client.post(
        f"/console/credentials/GD/{idx}/revoke",
        data={"reason": "fraud", "csrf_token": csrf(client, page)},
    )
    assert r.status_code == 403


def test_logout_ends_the_session(client: FlaskClient) -> None:
    login(client, "viewer")
    r = client.post("/console/logout", data={"csrf_token": csrf(client, "/console/credentials")})
    assert r.status_code == 302
    assert client.get("/console/credentials").status_code == 302


def test_find_by_document_number_shows_it_masked(client: FlaskClient, gd: IssuerContext) -> None:
    credential(gd, "G10000002")
    login(client, "viewer")
    html = client.post(
        "/console/credentials",
        data={
            "by": "document_number",
            "q": "G10000002",
            "csrf_token": csrf(client, "/console/credentials"),
        },
    ).get_data(True)
    assert "…0002" in html and "G10000002</td>" not in html


def test_document_number_never_travels_in_the_address(
    client: FlaskClient, gd: IssuerContext
) -> None:
    credential(gd, "G10000002")
    login(client, "viewer")
    r = client.get("/console/credentials?by=document_number&q=G10000002")
    assert r.status_code == 400
    assert "G10000002" not in r.get_data(as_text=True)
    html = client.get("/console/credentials").get_data(True)
    assert '<form method="post" class="search card">' in html


def test_bulk_revoke_preview_then_confirm(client: FlaskClient, gd: IssuerContext) -> None:
    idx = [credential(gd, f"G1000000{i}") for i in (3, 4)]
    login(client, "oper")
    data = "status_index\n" + "\n".join(map(str, [*idx, 999_999])) + "\nnot-a-number\n"
    from io import BytesIO

    r = client.post(
        "/console/bulk",
        data={
            "csrf_token": csrf(client, "/console/bulk"),
            "region": "GD",
            "reason": "fraud",
            "file": (BytesIO(data.encode()), "list.csv"),
        },
        content_type="multipart/form-data",
    )
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "1 unknown" in html and "not a status index" in html
    job = re.search(r"/console/bulk/([^/]+)/confirm", html).group(1)  # type: ignore[union-attr]
    r = client.post(
        f"/console/bulk/{job}/confirm", data={"csrf_token": csrf(client, "/console/bulk")}
    )
    assert r.status_code == 400  # the box was not ticked
    ops = client.application.extensions["issuer.admin_ops"]
    ops.on_change = lambda: None
    r = client.post(
        f"/console/bulk/{job}/confirm",
        data={"csrf_token": csrf(client, "/console/bulk"), "confirm": "yes"},
    )
    assert r.status_code == 302
    import time

    for _ in range(100):
        progress = client.get(f"/console/bulk/{job}/progress.json").get_json()
        if progress["state"] == "finished":
            break
        time.sleep(0.05)
    assert progress["done"] == progress["total"] == 3
    with gd.sessions() as s:
        assert {
            c.state for c in s.query(CredentialRow).filter(CredentialRow.status_index.in_(idx))
        } == {"revoked"}


def test_key_revocation_needs_two_steps(client: FlaskClient, gd: IssuerContext) -> None:
    login(client, "keyadmin")
    html = client.get("/console/keys").get_data(as_text=True)
    kid = re.search(r"/console/keys/([^/]+)/revoke", html).group(1)  # type: ignore[union-attr]
    token = csrf(client, "/console/keys")
    form = {
        "csrf_token": token,
        "region": "GD",
        "reason": "laptop stolen",
        "compromised_at": str(gd.now() - 60),
    }
    r = client.post(f"/console/keys/{kid}/revoke", data=form)
    assert r.status_code == 200 and "Confirm key revocation" in r.get_data(as_text=True)
    r = client.post(f"/console/keys/{kid}/revoke", data={**form, "step": "2", "confirm_kid": "x"})
    assert r.status_code == 400
    r = client.post(f"/console/keys/{kid}/revoke", data={**form, "step": "2", "confirm_kid": kid})
    assert r.status_code == 302
    assert "compromised" in client.get("/console/keys").get_data(as_text=True)


def test_audit_page_and_csv_for_auditors_only(client: FlaskClient, gd: IssuerContext) -> None:
    login(client, "oper")
    assert client.get("/console/audit").status_code == 403
    client.post("/console/logout", data={"csrf_token": csrf(client, "/console/credentials")})
    login(client, "auditor")
    assert "hash chain verified" in client.get("/console/audit").get_data(as_text=True)
    r = client.get("/console/audit.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert '"oper","GD","read:view_audit"' in r.get_data(as_text=True)


def test_ledger_page_without_consortium_says_so(client: FlaskClient) -> None:
    login(client, "viewer")
    html = client.get("/console/ledger").get_data(as_text=True)
    assert "no consortium file configured" in html and "waiting for the GD log" in html


def test_refused_outbox_entry_is_named_on_the_ledger_page_and_status_api(
    client: FlaskClient, gd: IssuerContext
) -> None:
    from issuer import anchor
    from issuer.models import OutboxRow

    credential(gd)
    ledger = anchor.InMemoryLedger()
    with gd.sessions() as s:
        ledger.refuse.add(s.get_one(OutboxRow, 2).entry)
    anchor.drain(gd, ledger)
    login(client, "viewer")
    html = client.get("/console/ledger").get_data(as_text=True)
    assert 'id="outbox-quarantined"' in html and "injected_rule" in html
    status = client.get("/v1/status").get_json()
    assert status["pending_anchors"] == 0 and status["quarantined_anchors"] == 1
    assert status["quarantined"][0]["outbox_id"] == 2


def test_workers_share_one_session_key_file_with_mode_0600(gd: IssuerContext) -> None:
    a = create_app(gd.config, context=gd, start_workers=False)
    b = create_app(gd.config, context=gd, start_workers=False)
    assert a.secret_key == b.secret_key and len(a.secret_key) == 32
    key_file = gd.config.key_dir / "console-session.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
