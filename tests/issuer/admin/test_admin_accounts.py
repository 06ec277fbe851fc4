"""Admin accounts: argon2 passwords, login rate limiting, server-side sessions with idle
timeout and logout, hashed API tokens (issuer.admin.accounts_db)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from issuer.admin import accounts_db as adb
from issuer.admin.accounts import Role
from issuer.admin.models import AdminAccount, AdminApiToken
from issuer.config import IssuerConfig
from issuer.context import IssuerContext, ManualClock
from issuer.errors import BadRequestError, ConflictError, UnauthorizedError

PASSWORD = "correct horse battery"


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[IssuerContext]:
    c = IssuerContext.open(IssuerConfig(region="GD", data_dir=tmp_path), clock=ManualClock())
    yield c
    c.dispose()


def make(ctx: IssuerContext, name: str = "alice", role: Role = Role.OPERATOR) -> None:
    adb.create_account(ctx.sessions, name, "GD", frozenset({role}), PASSWORD, ctx.now())


def test_password_is_stored_as_argon2id_hash(ctx: IssuerContext) -> None:
    make(ctx)
    with ctx.sessions() as s:
        row = s.scalars(select(AdminAccount)).one()
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash
    p = adb.login(ctx.sessions, "alice", PASSWORD, "127.0.0.1", ctx.now())
    assert (p.username, p.region, p.roles) == ("alice", "GD", {Role.OPERATOR})


def test_short_password_and_bad_username_are_refused(ctx: IssuerContext) -> None:
    with pytest.raises(BadRequestError, match="12"):
        adb.create_account(ctx.sessions, "bob", "GD", frozenset({Role.VIEWER}), "short", 0)
    with pytest.raises(BadRequestError, match="username"):
        adb.create_account(ctx.sessions, "Bob Smith", "GD", frozenset({Role.VIEWER}), PASSWORD, 0)


def test_duplicate_username_is_refused(ctx: IssuerContext) -> None:
    make(ctx)
    with pytest.raises(ConflictError):
        make(ctx)


def test_wrong_password_and_unknown_user_get_the_same_answer(ctx: IssuerContext) -> None:
    make(ctx)
    with pytest.raises(UnauthorizedError, match="wrong username or password"):
        adb.login(ctx.sessions, "alice", "wrong password!!", "10.0.0.1", ctx.now())
    with pytest.raises(UnauthorizedError, match="wrong username or password"):
        adb.login(ctx.sessions, "mallory", PASSWORD, "10.0.0.1", ctx.now())


def test_session_ends_after_idle_timeout_and_on_logout(ctx: IssuerContext) -> None:
    make(ctx)
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    sid = adb.start_session(ctx.sessions, "alice", "127.0.0.1", ctx.now())
    clock.advance(adb.IDLE_TIMEOUT_S - 1)
    assert adb.resume_session(ctx.sessions, sid, ctx.now()).principal.username == "alice"
    clock.advance(adb.IDLE_TIMEOUT_S + 1)
    with pytest.raises(UnauthorizedError, match="ended"):
        adb.resume_session(ctx.sessions, sid, ctx.now())
    sid2 = adb.start_session(ctx.sessions, "alice", "127.0.0.1", ctx.now())
    adb.end_session(ctx.sessions, sid2)
    with pytest.raises(UnauthorizedError):
        adb.resume_session(ctx.sessions, sid2, ctx.now())
    with pytest.raises(UnauthorizedError):
        adb.resume_session(ctx.sessions, "made-up-session-id", ctx.now())


def test_disabling_an_account_ends_its_sessions_and_tokens(ctx: IssuerContext) -> None:
    make(ctx)
    sid = adb.start_session(ctx.sessions, "alice", "127.0.0.1", ctx.now())
    token = adb.issue_token(ctx.sessions, "alice", "script", ctx.now())
    adb.set_disabled(ctx.sessions, "alice", True)
    with pytest.raises(UnauthorizedError):
        adb.resume_session(ctx.sessions, sid, ctx.now())
    with pytest.raises(UnauthorizedError):
        adb.authenticate_token(ctx.sessions, token, ctx.now())


def test_api_token_is_stored_hashed_and_can_be_revoked(ctx: IssuerContext) -> None:
    make(ctx)
    token = adb.issue_token(ctx.sessions, "alice", "script", ctx.now())
    with ctx.sessions() as s:
        row = s.scalars(select(AdminApiToken)).one()
    assert token.encode() != row.token_hash and token.split("_")[-1] not in row.token_hash.hex()
    assert adb.authenticate_token(ctx.sessions, token, ctx.now()).username == "alice"
    adb.revoke_token(ctx.sessions, row.token_id)
    with pytest.raises(UnauthorizedError, match="revoked"):
        adb.authenticate_token(ctx.sessions, token, ctx.now())
