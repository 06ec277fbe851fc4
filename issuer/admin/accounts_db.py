"""Storage of admin accounts, console sessions and API tokens, with login rate limits.

Authentication edges for the console, the JSON API and the CLI; each returns an
`AdminPrincipal` (issuer.admin.accounts) or raises UnauthorizedError / RateLimitedError.
Login attempts are counted per (username, address) pair before the password is
checked, with a backoff per pair (issuer.admin.login_guard). Console sessions live
server-side: the cookie carries a random id whose SHA-256 is stored, so logout and
idle timeout end a session for real, whatever the browser keeps.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from common.observability import SecurityEvent, security_event
from issuer.admin import login_guard
from issuer.admin.accounts import (
    DUMMY_PASSWORD_HASH,
    AdminPrincipal,
    Role,
    check_username,
    hash_password,
    new_api_token,
    parse_api_token,
    parse_roles,
    render_roles,
    token_matches,
    verify_password,
)
from issuer.admin.models import AdminAccount, AdminApiToken, AdminSession
from issuer.errors import ConflictError, NotFoundError, RateLimitedError, UnauthorizedError

log = logging.getLogger(__name__)


def _who_tried(username: str) -> str:
    """A short digest of the attempted username: enough to see repeated attempts on one
    account, without writing down whatever was typed (a password in the wrong field)."""
    return hashlib.sha256(username.encode("utf-8", "replace")).hexdigest()[:12]


IDLE_TIMEOUT_S = 15 * 60  # seconds without a request before a session ends
SESSION_MAX_S = 12 * 3_600  # seconds a session lives at most, however active
SESSION_ID_BYTES = 32


def principal_of(account: AdminAccount) -> AdminPrincipal:
    return AdminPrincipal(account.username, account.region, parse_roles(account.roles))


def create_account(
    sessions: sessionmaker[Session],
    username: str,
    region: str,
    roles: frozenset[Role],
    password: str,
    now: int,
) -> AdminPrincipal:
    check_username(username)
    pw_hash = hash_password(password)
    with sessions.begin() as s:
        if s.scalar(select(AdminAccount.id).where(AdminAccount.username == username)):
            raise ConflictError(f"an admin named {username} already exists")
        account = AdminAccount(
            username=username,
            region=region,
            roles=render_roles(roles),
            password_hash=pw_hash,
            disabled=False,
            created_at=now,
        )
        s.add(account)
        s.flush()
        return principal_of(account)


def set_password(sessions: sessionmaker[Session], username: str, password: str) -> None:
    pw_hash = hash_password(password)
    with sessions.begin() as s:
        account = _account(s, username)
        account.password_hash = pw_hash
        # A new password ends everything the old one opened: console sessions, and the
        # API tokens issued under it (a changed password often means a leaked one).
        _end_all(s, account.id)


def set_disabled(sessions: sessionmaker[Session], username: str, disabled: bool) -> None:
    with sessions.begin() as s:
        account = _account(s, username)
        account.disabled = disabled
        if disabled:
            # Revoked for good, not merely suspended: enabling the account again must
            # not bring back tokens that may have leaked while it was disabled.
            _end_all(s, account.id)


def _end_all(s: Session, account_id: int) -> None:
    s.execute(update(AdminSession).where(AdminSession.account_id == account_id).values(ended=True))
    s.execute(
        update(AdminApiToken).where(AdminApiToken.account_id == account_id).values(revoked=True)
    )


def list_accounts(sessions: sessionmaker[Session]) -> list[AdminAccount]:
    with sessions() as s:
        return list(s.scalars(select(AdminAccount).order_by(AdminAccount.username)).all())


def _account(s: Session, username: str) -> AdminAccount:
    account = s.scalars(select(AdminAccount).where(AdminAccount.username == username)).first()
    if account is None:
        raise NotFoundError(f"no admin named {username}")
    return account


def login(
    sessions: sessionmaker[Session],
    username: str,
    password: str,
    address: str,
    now: int,
    region: str | None = None,
) -> AdminPrincipal:
    """Check a username and password. The attempt is counted for the (username,
    address) pair before the password is checked (issuer.admin.login_guard), and
    the check waits for one of the process's few verification slots. RateLimitedError
    while the pair is in backoff or no slot frees up; UnauthorizedError otherwise.
    With `region`, the start of a backoff is written on the audit log."""
    try:
        attempt = login_guard.reserve(sessions, username, address, now)
    except RateLimitedError:
        security_event(
            log, SecurityEvent.LOGIN_REFUSED, why="rate_limited",
            user=_who_tried(username), address=address,
        )  # fmt: skip
        raise
    with sessions() as s:
        account = s.scalars(select(AdminAccount).where(AdminAccount.username == username)).first()
    try:
        with login_guard.GATE.slot():
            verify_password(account.password_hash if account else DUMMY_PASSWORD_HASH, password)
        if account is None or account.disabled:
            raise UnauthorizedError("wrong username or password")
    except UnauthorizedError:
        security_event(
            log, SecurityEvent.LOGIN_REFUSED, why="bad_credentials",
            user=_who_tried(username), address=address,
        )  # fmt: skip
        if attempt.started_backoff:
            login_guard.forget_idle(sessions, now)
            if region is not None:
                _audit_backoff(sessions, attempt, region, now)
        raise
    login_guard.succeeded(sessions, attempt)
    return principal_of(account)


def _audit_backoff(
    sessions: sessionmaker[Session], attempt: login_guard.Attempt, region: str, now: int
) -> None:
    # The pattern an operator needs: which account, from where, and how many
    # addresses are guessing at it right now (one = a guesser; many = a campaign).
    from issuer import audit

    blocked = login_guard.addresses_in_backoff(sessions, attempt.username, now)
    audit.record(
        sessions,
        audit.AuditEvent(
            actor=attempt.username[:32],
            region=region,
            action="login_backoff",
            target=f"account:{attempt.username}",
            detail=(
                f"{attempt.number} failed logins from this address; "
                f"{blocked} address(es) in backoff for this account"
            ),
            address=attempt.address,
            channel=audit.Channel.CONSOLE,
            outcome=audit.Outcome.DENIED,
        ),
        now,
    )


def start_session(sessions: sessionmaker[Session], username: str, address: str, now: int) -> str:
    sid = secrets.token_urlsafe(SESSION_ID_BYTES)
    with sessions.begin() as s:
        account = _account(s, username)
        s.add(
            AdminSession(
                sid_hash=_sid_hash(sid),
                account_id=account.id,
                created_at=now,
                last_seen=now,
                address=address[:64],
                ended=False,
            )
        )
    return sid


def _sid_hash(sid: str) -> bytes:
    return hashlib.sha256(sid.encode("ascii", "replace")).digest()


@dataclass(frozen=True)
class SessionInfo:
    principal: AdminPrincipal
    created_at: int
    last_seen: int
    language: str | None = None  # the admin's chosen console language, if any


def resume_session(sessions: sessionmaker[Session], sid: str, now: int) -> SessionInfo:
    """The principal of a live session (and touch it); UnauthorizedError when the
    session is unknown, ended, idle too long, too old, or its account is disabled."""
    with sessions.begin() as s:
        row = s.scalars(select(AdminSession).where(AdminSession.sid_hash == _sid_hash(sid))).first()
        if row is None or row.ended:
            raise UnauthorizedError("not logged in")
        account = s.get_one(AdminAccount, row.account_id)
        if (
            now - row.last_seen > IDLE_TIMEOUT_S
            or now - row.created_at > SESSION_MAX_S
            or account.disabled
        ):
            row.ended = True
            raise UnauthorizedError("the session ended: please log in again")
        info = SessionInfo(principal_of(account), row.created_at, row.last_seen, account.language)
        row.last_seen = now
        return info


def set_language(sessions: sessionmaker[Session], username: str, language: str | None) -> None:
    """Keep `language` (a credential.languages.Language value, or None for "follow
    the browser") as this admin's console language."""
    with sessions.begin() as s:
        _account(s, username).language = language


def end_session(sessions: sessionmaker[Session], sid: str) -> None:
    with sessions.begin() as s:
        s.execute(
            update(AdminSession).where(AdminSession.sid_hash == _sid_hash(sid)).values(ended=True)
        )


def issue_token(sessions: sessionmaker[Session], username: str, label: str, now: int) -> str:
    """A new API token for the admin; the only time the clear token exists."""
    new = new_api_token()
    with sessions.begin() as s:
        account = _account(s, username)
        s.add(
            AdminApiToken(
                token_id=new.token_id,
                account_id=account.id,
                token_hash=new.token_hash,
                label=label[:64],
                created_at=now,
                revoked=False,
            )
        )
    return new.token


def revoke_token(sessions: sessionmaker[Session], token_id: str) -> None:
    with sessions.begin() as s:
        n = s.execute(
            update(AdminApiToken).where(AdminApiToken.token_id == token_id).values(revoked=True)
        ).rowcount  # type: ignore[attr-defined]
        if not n:
            raise NotFoundError(f"no API token {token_id}")


def authenticate_token(sessions: sessionmaker[Session], token: str, now: int) -> AdminPrincipal:
    token_id = parse_api_token(token)
    with sessions.begin() as s:
        row = s.scalars(select(AdminApiToken).where(AdminApiToken.token_id == token_id)).first()
        if row is None or row.revoked or not token_matches(token, row.token_hash):
            security_event(log, SecurityEvent.LOGIN_REFUSED, why="bad_api_token", token_id=token_id)
            raise UnauthorizedError("unknown or revoked admin API token")
        account = s.get_one(AdminAccount, row.account_id)
        if account.disabled:
            security_event(
                log, SecurityEvent.LOGIN_REFUSED, why="account_disabled", token_id=token_id
            )
            raise UnauthorizedError("the admin account is disabled")
        row.last_used_at = now
        return principal_of(account)
