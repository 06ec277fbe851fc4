"""An attacker without a key crafts the console's `next` (after login, after a language
switch) over real HTTP: no redirect leaves the console, and a `next` carrying CR LF is
an ordinary redirect home, not an unhandled error after the login succeeded."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests

from issuer.admin import accounts_db
from issuer.admin.accounts import Role
from issuer.app import create_app, stop_app
from issuer.testing import Served, make_context, serve
from tests.issuer.admin.test_console import PASSWORD

HOSTILE_NEXT = (
    "//evil.example/",
    "https://evil.example/",
    "/\\evil.example",
    "/console/\\..\\..\\evil.example",
    "/console/../../\\evil.example",
    "/console/..",
    "/console/\r\nSet-Cookie: hb_console=x",
    "/console/\r\nLocation: https://evil.example/",
    "/console/\t/evil.example",
    "/console/" + "a" * 5000,
)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # One issuer for the module, with the cheap argon2 cost of test_console.
    from argon2 import PasswordHasher

    from issuer.admin import accounts

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(accounts, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8192))
        ctx = make_context(tmp_path_factory.mktemp("console"), "GD")
        accounts_db.create_account(
            ctx.sessions, "oper", "GD", frozenset({Role.OPERATOR}), PASSWORD, 0
        )
        app = create_app(ctx.config, context=ctx, start_workers=False)
        try:
            with serve(app) as served:
                yield served
        finally:
            stop_app(app)
            ctx.dispose()


def _token(http: requests.Session, url: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', http.get(url, timeout=10).text)
    assert m
    return m.group(1)


def _login(console: Served, next_path: str) -> requests.Response:
    http = requests.Session()
    token = _token(http, f"{console.url}/console/login")
    return http.post(
        f"{console.url}/console/login?next={quote(next_path, safe='')}",
        data={"username": "oper", "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )


@pytest.mark.parametrize("next_path", HOSTILE_NEXT)
def test_console_login_next_never_leaves_the_console_nor_fails(
    console: Served, next_path: str
) -> None:
    r = _login(console, next_path)
    assert r.status_code == 302, r.text[:300]
    assert r.headers["Location"] == "/console/overview"
    assert "evil" not in str(r.headers)


@pytest.mark.parametrize("next_path", HOSTILE_NEXT)
def test_console_language_switch_next_never_leaves_the_console_nor_fails(
    console: Served, next_path: str
) -> None:
    http = requests.Session()
    token = _token(http, f"{console.url}/console/login")
    http.post(
        f"{console.url}/console/login",
        data={"username": "oper", "password": PASSWORD, "csrf_token": token},
        timeout=10,
    )
    token = _token(http, f"{console.url}/console/credentials")
    r = http.post(
        f"{console.url}/console/language",
        data={"language": "pt", "next": next_path, "csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 302, r.text[:300]
    assert r.headers["Location"] == "/console/credentials"


def test_console_login_next_inside_the_console_is_kept(console: Served) -> None:
    r = _login(console, "/console/credentials?page=2")
    assert r.status_code == 302 and r.headers["Location"] == "/console/credentials?page=2"
