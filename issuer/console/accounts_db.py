"""Storage of admin accounts, console sessions and API tokens, with login rate limits.

Authentication edges for the console, the JSON API and the CLI; each returns an
`AdminPrincipal` (issuer.accounts) or raises UnauthorizedError / RateLimitedError.
Failed logins are counted per username and per client address in the issuer's
`rate_events` table (keys hashed, never a raw username). Console sessions live
server-side: the cookie carries a random id whose SHA-256 is stored, so logout and
idle timeout end a session for real, whatever the browser keeps.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from issuer.accounts import (
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
from issuer.console.models import AdminAccount, AdminApiToken, AdminSession
from issuer.errors import ConflictError, NotFoundError, RateLimitedError, UnauthorizedError
from issuer.models import RateEvent

LOGIN_WINDOW_S = 15 * 60  # seconds over which failed logins are counted
LOGIN_FAILURES_PER_USER = 5  # failed logins per username per window
LOGIN_FAILURES_PER_ADDR = 20  # failed logins per client address per window
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
        # A new password ends every open console session of that admin.
        s.execute(
            update(AdminSession).where(AdminSession.account_id == account.id).values(ended=True)
        )


def set_disabled(sessions: sessionmaker[Session], username: str, disabled: bool) -> None:
    with sessions.begin() as s:
        account = _account(s, username)
        account.disabled = disabled
        if disabled:
            s.execute(
                update(AdminSession).where(AdminSession.account_id == account.id).values(ended=True)
            )


def list_accounts(sessions: sessionmaker[Session]) -> list[AdminAccount]:
    with sessions() as s:
        return list(s.scalars(select(AdminAccount).order_by(AdminAccount.username)).all())


def _account(s: Session, username: str) -> AdminAccount:
    account = s.scalars(select(AdminAccount).where(AdminAccount.username == username)).first()
    if account is None:
        raise NotFoundError(f"no admin named {username}")
    return account


def _rate_key(kind: str, value: str) -> str:
    return f"admin-login:{kind}:" + hashlib.sha256(value.encode()).hexdigest()[:40]


def _failures(s: Session, key: str, now: int) -> int:
    return int(
        s.scalar(
            select(func.count())
            .select_from(RateEvent)
            .where(RateEvent.key == key, RateEvent.at > now - LOGIN_WINDOW_S)
        )
        or 0
    )


def login(
    sessions: sessionmaker[Session], username: str, password: str, address: str, now: int
) -> AdminPrincipal:
    """Check a username and password, counting failures; RateLimitedError once either
    the username or the address failed too often within the window."""
    user_key, addr_key = _rate_key("user", username), _rate_key("addr", address)
    with sessions() as s:
        if (
            _failures(s, user_key, now) >= LOGIN_FAILURES_PER_USER
            or _failures(s, addr_key, now) >= LOGIN_FAILURES_PER_ADDR
        ):
            raise RateLimitedError(
                f"too many failed logins: wait {LOGIN_WINDOW_S // 60} minutes and try again"
            )
        account = s.scalars(select(AdminAccount).where(AdminAccount.username == username)).first()
    try:
        verify_password(account.password_hash if account else DUMMY_PASSWORD_HASH, password)
        if account is None or account.disabled:
            raise UnauthorizedError("wrong username or password")
    except UnauthorizedError:
        with sessions.begin() as s:
            s.add(RateEvent(key=user_key, at=now))
            s.add(RateEvent(key=addr_key, at=now))
            s.execute(delete(RateEvent).where(RateEvent.at <= now - 2 * LOGIN_WINDOW_S))
        raise
    return principal_of(account)


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
            raise UnauthorizedError("unknown or revoked admin API token")
        account = s.get_one(AdminAccount, row.account_id)
        if account.disabled:
            raise UnauthorizedError("the admin account is disabled")
        row.last_used_at = now
        return principal_of(account)
