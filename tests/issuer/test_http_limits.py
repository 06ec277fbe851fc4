"""Integers beyond 64 bits and deeply nested JSON bodies get a typed 400 from every
issuer route, never a 5xx (issuer.http_limits)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient

from issuer.admin import accounts, accounts_db
from issuer.admin.accounts import Role
from issuer.app import create_app
from issuer.context import IssuerContext
from issuer.http_limits import MAX_JSON_DEPTH, MAX_SQL_INT, json_depth_exceeds
from issuer.testing import make_context

TOO_BIG = str(MAX_SQL_INT + 1)  # 2^63
NESTED = "[" * 50_000  # well under the 64 KiB body limit


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8192))


@pytest.fixture
def gd(tmp_path: Path) -> Iterator[IssuerContext]:
    ctx = make_context(tmp_path, "GD")
    yield ctx
    ctx.dispose()


@pytest.fixture
def client(gd: IssuerContext) -> FlaskClient:
    return create_app(gd.config, context=gd, start_workers=False).test_client()


@pytest.fixture
def admin(gd: IssuerContext) -> dict[str, str]:
    accounts_db.create_account(gd.sessions, "root", "GD", frozenset(Role), "x" * 12, 0)
    return {"Authorization": "Bearer " + accounts_db.issue_token(gd.sessions, "root", "t", 0)}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", f"/v1/admin/regions/GD/credentials/{TOO_BIG}"),
        ("post", f"/v1/admin/regions/GD/credentials/{TOO_BIG}/revoke"),
        ("post", f"/v1/admin/regions/GD/credentials/{TOO_BIG}/reinstate"),
        ("get", f"/v1/admin/log-entries/{TOO_BIG}"),
        ("get", f"/v1/admin/log-entries/{'9' * 400}"),
    ],
)
def test_path_integer_of_2_pow_63_is_a_400_not_a_5xx(
    client: FlaskClient, admin: dict[str, str], method: str, path: str
) -> None:
    r = getattr(client, method)(path, headers=admin, json={"reason": "administrative"})
    assert r.status_code == 400, r.get_data()
    assert r.get_json()["error"] == "bad_request"


def test_largest_64_bit_path_integer_is_an_ordinary_404(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    r = client.get(f"/v1/admin/regions/GD/credentials/{MAX_SQL_INT}", headers=admin)
    assert r.status_code == 404


@pytest.mark.parametrize("field", ["compromised_at", "until"])
def test_unix_seconds_beyond_64_bits_in_a_body_are_a_400(
    client: FlaskClient, admin: dict[str, str], field: str
) -> None:
    if field == "until":
        path = "/v1/admin/regions/GD/status-overrides"
        body = {"document_number": "G10000001", "colour": "red", "reason": "x", field: 2**70}
    else:
        path = "/v1/admin/regions/GD/keys/some-kid/revoke"
        body = {"reason": "x", field: 2**70}
    r = client.post(path, headers=admin, json=body)
    assert r.status_code == 400 and field in r.get_json()["message"]


def test_record_time_of_many_digits_is_a_400(client: FlaskClient, gd: IssuerContext) -> None:
    token = gd.keys.token(gd.config.authority_token_path)
    record = {"document_number": "G10000001", "kind": "test", "at": "9" * 30, "result": "negative"}
    r = client.post(
        "/v1/records", headers={"Authorization": f"Bearer {token}"}, json={"records": [record]}
    )
    assert r.status_code == 400, r.get_data()


@pytest.mark.parametrize(
    "path", ["/v1/enrolment/code", "/v1/enrolment", "/v1/conversion", "/v1/records"]
)
def test_deeply_nested_json_is_a_400_even_unauthenticated(client: FlaskClient, path: str) -> None:
    r = client.post(path, data=NESTED, content_type="application/json")
    assert r.status_code in (400, 401), r.get_data()
    assert r.status_code != 503


def test_deeply_nested_json_on_the_admin_api_is_a_400(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    body = '{"a":' * 10_000 + "1" + "}" * 10_000
    r = client.post(
        "/v1/admin/regions/GD/bulk-revocations",
        data=body,
        content_type="application/json",
        headers=admin,
    )
    assert r.status_code == 400


def test_console_path_integer_of_2_pow_63_is_a_400(client: FlaskClient) -> None:
    r = client.get(f"/console/credentials/GD/{TOO_BIG}")
    assert r.status_code in (302, 400)  # not logged in: the login redirect comes first


def test_json_depth_is_measured_without_recursion() -> None:
    deep: list[object] = []
    cur = deep
    for _ in range(100_000):
        nxt: list[object] = []
        cur.append(nxt)
        cur = nxt
    assert json_depth_exceeds(deep)
    assert not json_depth_exceeds({"a": [{"b": [1, 2, {"c": 3}]}]})
    ok: object = 1
    for _ in range(MAX_JSON_DEPTH):
        ok = [ok]
    assert not json_depth_exceeds(ok)
    assert json_depth_exceeds([ok])
