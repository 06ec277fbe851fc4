"""Bulk revocation of 100,000 rows over HTTP: the console's upload and the admin API
(CSV streamed, or JSON) take the file past the issuer's 64 KiB general body limit,
parse it as it streams, and the job's progress shows in the console."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from issuer.admin import accounts, accounts_db
from issuer.admin.accounts import Role
from issuer.admin.ops import MAX_BULK_BYTES, parse_bulk_csv
from issuer.app import create_app
from issuer.context import IssuerContext
from issuer.errors import BadRequestError
from issuer.models import CredentialRow
from issuer.testing import enrol_directly, make_context, new_device

PASSWORD = "correct horse battery"
ROWS = 100_000
JOB_TIMEOUT_S = 120.0

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8192))


@pytest.fixture
def gd(tmp_path: Path) -> Iterator[IssuerContext]:
    ctx = make_context(tmp_path, "GD")
    accounts_db.create_account(ctx.sessions, "oper", "GD", frozenset({Role.OPERATOR}), PASSWORD, 0)
    yield ctx
    ctx.dispose()


@pytest.fixture
def client(gd: IssuerContext) -> FlaskClient:
    app = create_app(gd.config, context=gd, start_workers=False)
    app.extensions["issuer.admin_ops"].on_change = lambda: None
    return app.test_client()


def indices(gd: IssuerContext) -> tuple[list[int], str]:
    """Three real credentials among 100,000 status indices, as a CSV with a header."""
    real = [
        enrol_directly(gd, doc, new_device()).issued.credential.status_index
        for doc in ("G10000001", "G10000002", "G10000003")
    ]
    rest = [i for i in range(1_000_000, 1_000_000 + ROWS) if i not in real][: ROWS - len(real)]
    every = [*real, *rest]
    return real, "status_index,comment\n" + "\n".join(f"{i},x" for i in every) + "\n"


def csrf(client: FlaskClient, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, html[:300]
    return m.group(1)


def wait_finished(get_progress) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    seen = []
    while time.monotonic() < deadline:
        p = get_progress()
        seen.append(p["done"])
        if p["state"] in ("finished", "failed"):
            return {**p, "seen": seen}
        time.sleep(0.2)
    raise AssertionError(f"bulk job still running after {JOB_TIMEOUT_S} s: {seen[-3:]}")


def revoked(gd: IssuerContext, real: list[int]) -> set[str]:
    with gd.sessions() as s:
        rows = s.query(CredentialRow).filter(CredentialRow.status_index.in_(real))
        return {c.state for c in rows}


def test_api_takes_100000_rows_as_a_streamed_csv(client: FlaskClient, gd: IssuerContext) -> None:
    real, csv_text = indices(gd)
    assert len(csv_text) > 10 * gd.config.max_body_bytes  # far past the general limit
    auth = {"Authorization": "Bearer " + accounts_db.issue_token(gd.sessions, "oper", "t", 0)}
    r = client.post(
        "/v1/admin/regions/GD/bulk-revocations?reason=fraud",
        data=csv_text.encode(),
        content_type="text/csv",
        headers=auth,
    )
    assert r.status_code == 201, r.get_data()[:300]
    preview = r.get_json()
    assert (preview["total"], preview["unknown"]) == (ROWS, ROWS - len(real))
    job = preview["job_id"]
    r = client.post(f"/v1/admin/bulk-revocations/{job}/confirm", headers=auth)
    assert r.status_code == 202
    done = wait_finished(
        lambda: client.get(f"/v1/admin/bulk-revocations/{job}", headers=auth).get_json()
    )
    assert done["state"] == "finished" and done["done"] == ROWS and done["percent"] == 100
    assert revoked(gd, real) == {"revoked"}


def test_api_takes_100000_rows_as_json(client: FlaskClient, gd: IssuerContext) -> None:
    auth = {"Authorization": "Bearer " + accounts_db.issue_token(gd.sessions, "oper", "t", 0)}
    body = {"status_indices": list(range(5_000_000, 5_000_000 + ROWS)), "reason": "fraud"}
    r = client.post("/v1/admin/regions/GD/bulk-revocations", json=body, headers=auth)
    assert r.status_code == 201, r.get_data()[:300]
    assert r.get_json()["total"] == ROWS


def test_console_takes_100000_rows_and_shows_the_jobs_progress(
    client: FlaskClient, gd: IssuerContext
) -> None:
    real, csv_text = indices(gd)
    client.post(
        "/console/login",
        data={
            "username": "oper",
            "password": PASSWORD,
            "csrf_token": csrf(client, "/console/login"),
        },
    )
    token = csrf(client, "/console/bulk")
    # Encoded in memory (the test client's own encoder would spool to an unclosed
    # temporary file past 500 KB).
    boundary, body = encode_multipart(
        {
            "csrf_token": token,
            "region": "GD",
            "reason": "fraud",
            "file": FileStorage(BytesIO(csv_text.encode()), "list.csv", content_type="text/csv"),
        }
    )
    r = client.post(
        "/console/bulk", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )
    html = r.get_data(as_text=True)
    assert r.status_code == 200, html[:500]
    assert f'<strong id="bulk-total">{ROWS}</strong>' in html
    job = re.search(r"/console/bulk/([^/]+)/confirm", html).group(1)  # type: ignore[union-attr]
    r = client.post(f"/console/bulk/{job}/confirm", data={"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 302
    page = client.get(f"/console/bulk/{job}").get_data(as_text=True)
    assert 'id="job-bar"' in page and f"/ {ROWS}" in page
    done = wait_finished(lambda: client.get(f"/console/bulk/{job}/progress.json").get_json())
    assert done["state"] == "finished" and done["done"] == ROWS, done["message"]
    assert revoked(gd, real) == {"revoked"}


def test_upload_past_the_bulk_limit_is_refused_with_413(
    client: FlaskClient, gd: IssuerContext
) -> None:
    auth = {"Authorization": "Bearer " + accounts_db.issue_token(gd.sessions, "oper", "t", 0)}
    r = client.post(
        "/v1/admin/regions/GD/bulk-revocations?reason=fraud",
        data=b"1\n" * (MAX_BULK_BYTES // 2 + 100_000),
        content_type="text/csv",
        headers=auth,
    )
    assert r.status_code == 413 and r.get_json()["error"] == "too_large"


def test_other_routes_keep_the_general_body_limit(client: FlaskClient) -> None:
    r = client.post(
        "/v1/enrolment/code", data=b"{" + b" " * 200_000 + b"}", content_type="application/json"
    )
    assert r.status_code == 413


def test_streamed_parser_refuses_oversized_and_non_utf8_streams() -> None:
    with pytest.raises(BadRequestError, match="at most"):
        parse_bulk_csv(BytesIO(b"1\n" * (MAX_BULK_BYTES // 2 + 10)))
    with pytest.raises(BadRequestError, match="UTF-8"):
        parse_bulk_csv(BytesIO(b"1\n2\n\xff\xfe\n"))
    got, invalid = parse_bulk_csv(BytesIO(b"\xef\xbb\xbfstatus_index\n7\n7\nx\n9\n"))
    assert got == [7, 9] and len(invalid) == 1
