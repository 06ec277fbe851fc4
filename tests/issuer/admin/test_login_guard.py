"""Admin login under attack (issuer.admin.login_guard): racing guesses are counted
before the password check, the backoff is per (account, address) so neither a
guesser's address nor a named admin is locked out wholesale, argon2 verifications are
capped per process, and the start of a backoff lands on the audit log."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from issuer import audit
from issuer.admin import accounts, login_guard
from issuer.admin import accounts_db as adb
from issuer.admin.accounts import Role
from issuer.config import IssuerConfig
from issuer.context import IssuerContext, ManualClock
from issuer.errors import RateLimitedError, UnauthorizedError
from issuer.models import AdminAuditRecord

PASSWORD = "correct horse battery"
WRONG = "guess guess guess"


def open_ctx(tmp_path: Path, url: str = "") -> IssuerContext:
    cfg = IssuerConfig(region="GD", data_dir=tmp_path, database_url=url)
    return IssuerContext.open(cfg, clock=ManualClock())


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap = PasswordHasher(time_cost=1, memory_cost=8192)
    monkeypatch.setattr(accounts, "_HASHER", cheap)
    monkeypatch.setattr(adb, "DUMMY_PASSWORD_HASH", cheap.hash("not-a-real-password-0000"))


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[IssuerContext]:
    c = open_ctx(tmp_path)
    yield c
    c.dispose()


def make(ctx: IssuerContext, name: str) -> None:
    adb.create_account(ctx.sessions, name, "GD", frozenset({Role.OPERATOR}), PASSWORD, ctx.now())


def advance(ctx: IssuerContext, seconds: int) -> None:
    assert isinstance(ctx.clock, ManualClock)
    ctx.clock.advance(seconds)


def outcome(ctx: IssuerContext, user: str, password: str, address: str) -> str:
    try:
        adb.login(ctx.sessions, user, password, address, ctx.now(), "GD")
    except UnauthorizedError:
        return "wrong"
    except RateLimitedError:
        return "limited"
    return "ok"


def race_thirty_guesses(ctx: IssuerContext) -> Counter[str]:
    make(ctx, "alice")
    results: list[str] = []
    start = threading.Barrier(30)

    def guess() -> None:
        start.wait()
        results.append(outcome(ctx, "alice", WRONG, "203.0.113.7"))

    threads = [threading.Thread(target=guess) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Counter(results)


def test_thirty_concurrent_wrong_passwords_are_checked_only_five_times(
    ctx: IssuerContext,
) -> None:
    login_guard.GATE.peak = 0
    got = race_thirty_guesses(ctx)
    assert got == {"wrong": login_guard.FREE_ATTEMPTS, "limited": 30 - login_guard.FREE_ATTEMPTS}
    # Each argon2 check costs 64 MiB: never more than the cap at once.
    assert login_guard.GATE.peak <= login_guard.MAX_CONCURRENT_VERIFICATIONS


@pytest.mark.postgres
def test_thirty_concurrent_wrong_passwords_are_checked_only_five_times_on_postgres(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    c = open_ctx(tmp_path, fresh_postgres_url)
    try:
        got = race_thirty_guesses(c)
    finally:
        c.dispose()
    assert got == {"wrong": login_guard.FREE_ATTEMPTS, "limited": 30 - login_guard.FREE_ATTEMPTS}


def test_guesser_does_not_lock_the_admin_out_from_elsewhere(ctx: IssuerContext) -> None:
    make(ctx, "alice")
    for _ in range(20):
        outcome(ctx, "alice", WRONG, "203.0.113.7")
    assert outcome(ctx, "alice", WRONG, "203.0.113.7") == "limited"
    assert outcome(ctx, "alice", PASSWORD, "198.51.100.20") == "ok"


def test_failures_at_one_address_do_not_lock_out_other_admins_there(ctx: IssuerContext) -> None:
    make(ctx, "alice")
    make(ctx, "bobby")
    for _ in range(20):
        outcome(ctx, "alice", WRONG, "192.0.2.1")
    for name in ("nobody", "someone", "mallory"):  # spraying unknown names too
        for _ in range(5):
            outcome(ctx, name, WRONG, "192.0.2.1")
    assert outcome(ctx, "bobby", PASSWORD, "192.0.2.1") == "ok"


def test_backoff_doubles_and_a_correct_password_ends_it(ctx: IssuerContext) -> None:
    make(ctx, "alice")
    addr = "203.0.113.9"
    assert [outcome(ctx, "alice", WRONG, addr) for _ in range(6)] == ["wrong"] * 5 + ["limited"]
    # Even the right password waits out the pair's backoff.
    assert outcome(ctx, "alice", PASSWORD, addr) == "limited"
    advance(ctx, login_guard.BACKOFF_FIRST_S)
    assert outcome(ctx, "alice", WRONG, addr) == "wrong"
    advance(ctx, login_guard.BACKOFF_FIRST_S)
    assert outcome(ctx, "alice", PASSWORD, addr) == "limited"  # the second one is twice as long
    advance(ctx, login_guard.BACKOFF_FIRST_S)
    assert outcome(ctx, "alice", PASSWORD, addr) == "ok"
    assert [outcome(ctx, "alice", WRONG, addr) for _ in range(5)] == ["wrong"] * 5


def test_backoff_is_capped_and_a_quiet_pair_starts_afresh(ctx: IssuerContext) -> None:
    make(ctx, "alice")
    addr = "203.0.113.10"
    for _ in range(12):
        outcome(ctx, "alice", WRONG, addr)
        advance(ctx, login_guard.BACKOFF_MAX_S)
    assert outcome(ctx, "alice", WRONG, addr) == "wrong"  # never longer than the cap
    advance(ctx, login_guard.BACKOFF_MAX_S + login_guard.QUIET_RESET_S)
    assert [outcome(ctx, "alice", WRONG, addr) for _ in range(5)] == ["wrong"] * 5


def test_start_of_backoff_is_audited_with_the_number_of_guessing_addresses(
    ctx: IssuerContext,
) -> None:
    make(ctx, "alice")
    for addr in ("203.0.113.1", "203.0.113.2"):
        for _ in range(login_guard.FREE_ATTEMPTS + 3):
            outcome(ctx, "alice", WRONG, addr)
    with ctx.sessions() as s:
        rows = s.scalars(
            select(AdminAuditRecord).where(AdminAuditRecord.action == "login_backoff")
        ).all()
        assert audit.verify_all(s) >= 2
    assert [(r.address, r.outcome, r.target) for r in rows] == [
        ("203.0.113.1", "denied", "account:alice"),
        ("203.0.113.2", "denied", "account:alice"),
    ]
    assert "1 address(es) in backoff" in rows[0].detail
    assert "2 address(es) in backoff" in rows[1].detail


def test_verification_gate_refuses_when_no_slot_frees_up() -> None:
    gate = login_guard.VerificationGate(limit=1)
    with gate.slot(), pytest.raises(RateLimitedError, match="busy"), gate.slot(wait_s=0.05):
        pass
    with gate.slot():
        assert gate.running == 1


def test_password_change_revokes_the_admins_api_tokens(ctx: IssuerContext) -> None:
    make(ctx, "alice")
    token = adb.issue_token(ctx.sessions, "alice", "script", ctx.now())
    adb.set_password(ctx.sessions, "alice", "another long passphrase")
    with pytest.raises(UnauthorizedError):
        adb.authenticate_token(ctx.sessions, token, ctx.now())
    fresh = adb.issue_token(ctx.sessions, "alice", "script", ctx.now())
    assert adb.authenticate_token(ctx.sessions, fresh, ctx.now()).username == "alice"


def test_reenabling_an_account_does_not_revive_its_old_tokens(ctx: IssuerContext) -> None:
    make(ctx, "alice")
    token = adb.issue_token(ctx.sessions, "alice", "script", ctx.now())
    adb.set_disabled(ctx.sessions, "alice", True)
    adb.set_disabled(ctx.sessions, "alice", False)
    with pytest.raises(UnauthorizedError, match="revoked"):
        adb.authenticate_token(ctx.sessions, token, ctx.now())


def console_login(client, user: str, password: str, forwarded_for: str) -> int:  # type: ignore[no-untyped-def]
    import re

    html = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    r = client.post(
        "/console/login",
        data={"username": user, "password": password, "csrf_token": token},
        headers={"X-Forwarded-For": forwarded_for},
    )
    return int(r.status_code)


@pytest.mark.parametrize("trusted_proxies", [0, 1])
def test_console_behind_a_proxy_backs_off_the_guesser_not_the_admin(
    tmp_path: Path, trusted_proxies: int
) -> None:
    from issuer.app import create_app
    from issuer.testing import make_context

    c = make_context(tmp_path, "GD", trusted_proxies=trusted_proxies)
    try:
        make(c, "alice")
        guesser = create_app(c.config, context=c, start_workers=False).test_client()
        for _ in range(login_guard.FREE_ATTEMPTS):
            assert console_login(guesser, "alice", WRONG, "203.0.113.7") == 401
        admin = create_app(c.config, context=c, start_workers=False).test_client()
        status = console_login(admin, "alice", PASSWORD, "198.51.100.20")
        with c.sessions() as s:
            rows = s.scalars(
                select(AdminAuditRecord).where(AdminAuditRecord.action == "login_backoff")
            ).all()
    finally:
        c.dispose()
    if trusted_proxies:
        # The proxy's X-Forwarded-For tells the two apart: the admin gets in.
        assert status == 302
        assert [r.address for r in rows] == ["203.0.113.7"]
    else:
        # No proxy configured: the header is not believed, both share the peer address.
        assert status == 429
        assert [r.address for r in rows] == ["127.0.0.1"]
