"""Security events of the admin side are logged exactly once each, in one shape, and
without what was typed: a refused login, a refused API token, a refused action."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from issuer.admin import accounts_db as adb
from issuer.admin.accounts import AdminPrincipal, Role
from issuer.admin.ops import AdminOps, Who
from issuer.audit import Channel
from issuer.config import IssuerConfig
from issuer.context import IssuerContext, ManualClock
from issuer.errors import PermissionDeniedError, UnauthorizedError

PASSWORD = "correct horse battery"


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[IssuerContext]:
    c = IssuerContext.open(IssuerConfig(region="GD", data_dir=tmp_path), clock=ManualClock())
    yield c
    c.dispose()


def _events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def test_wrong_password_is_logged_once_without_the_typed_text(ctx, caplog) -> None:
    adb.create_account(ctx.sessions, "alice", "GD", frozenset({Role.VIEWER}), PASSWORD, ctx.now())
    with caplog.at_level(logging.WARNING), pytest.raises(UnauthorizedError):
        adb.login(ctx.sessions, "alice", "hunter2 typed by mistake", "10.0.0.9", ctx.now())
    (event,) = _events(caplog, "login_refused")
    assert event.fields["why"] == "bad_credentials" and event.fields["address"] == "10.0.0.9"
    assert "hunter2" not in caplog.text and "alice" not in caplog.text


def test_unknown_api_token_is_logged_once(ctx, caplog) -> None:
    with caplog.at_level(logging.WARNING), pytest.raises(UnauthorizedError):
        adb.authenticate_token(ctx.sessions, "hbadm_abcdefgh_" + "x" * 43, ctx.now())
    assert len(_events(caplog, "login_refused")) == 1


def test_viewer_revoking_is_one_permission_refusal(ctx, caplog) -> None:
    ops = AdminOps(ctx, None)
    viewer = Who(
        AdminPrincipal("vera", "GD", frozenset({Role.VIEWER})), "10.0.0.7", Channel.CONSOLE
    )
    with caplog.at_level(logging.WARNING), pytest.raises(PermissionDeniedError):
        ops.revoke(viewer, "GD", 7, "administrative", "reason typed by the admin")
    (event,) = _events(caplog, "permission_refused")
    assert event.fields["admin"] == "vera" and event.fields["action"] == "revoke"
    assert "reason typed by the admin" not in caplog.text
