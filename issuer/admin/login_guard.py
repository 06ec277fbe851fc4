"""Admin login throttling: per-(account, address) backoff counted before the password
is checked, and a cap on concurrent argon2 verifications in this process.

Why per pair: a limit per username lets anyone lock a named admin out from anywhere,
and a limit per address locks out every admin behind one NAT. Keyed by the pair, a
guesser only slows down their own guesses; the admin logging in from elsewhere is
not affected. Attacks that spread over many addresses are bounded by cost (the
verification cap below) and made visible on the audit log (`login_backoff` rows say
how many addresses are in backoff for that account).

Why counted first: the attempt is reserved in one conditional UPDATE before the slow
hash runs, so N concurrent wrong passwords cannot all pass a count taken before any
of them was recorded. The UPDATE matches only while the pair is not blocked; the
attempt that reaches `FREE_ATTEMPTS` sets the block itself, in the same statement, so
the next racer's UPDATE (re-evaluated after the row lock on PostgreSQL, serialised by
BEGIN IMMEDIATE on SQLite) matches nothing. A correct password clears the pair.

Why a verification cap: each argon2id verification costs `ARGON2_MEMORY_KIB` (64 MiB);
an unbounded burst of logins is a memory exhaustion attack. At most
`MAX_CONCURRENT_VERIFICATIONS` run at once per process; a login that waits longer
than `VERIFY_WAIT_S` for a slot is refused with 429.

What it does not do: remember anything across a successful login, or throttle API
tokens (256-bit random secrets; nothing to guess).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from issuer.admin.models import AdminLoginThrottle
from issuer.errors import RateLimitedError

FREE_ATTEMPTS = 5  # attempts per (account, address) before the backoff starts
BACKOFF_FIRST_S = 60  # seconds of the first backoff; each further one doubles it
BACKOFF_MAX_S = 15 * 60  # seconds; the longest backoff
QUIET_RESET_S = 15 * 60  # seconds without attempts after which a pair starts afresh
FORGET_AFTER_S = 24 * 3_600  # seconds after which an idle pair's row is deleted
MAX_CONCURRENT_VERIFICATIONS = 2  # argon2 verifications at once, per process
VERIFY_WAIT_S = 10.0  # seconds a login waits for a verification slot
MAX_NAME_CHARS = 64  # characters of a username kept (the form allows any text)


def _key(username: str, address: str) -> str:
    return hashlib.sha256(f"{username}\n{address}".encode()).hexdigest()


@dataclass(frozen=True)
class Attempt:
    """A reserved login attempt: which pair, and its number within the pair's run."""

    username: str
    address: str
    number: int

    @property
    def started_backoff(self) -> bool:
        return self.number == FREE_ATTEMPTS


def _insert_ignore(s: Session, row: dict[str, object]) -> None:
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        s.execute(postgresql.insert(AdminLoginThrottle).values(**row).on_conflict_do_nothing())
    elif dialect == "sqlite":
        s.execute(sqlite.insert(AdminLoginThrottle).values(**row).on_conflict_do_nothing())
    else:  # pragma: no cover - the issuer runs on SQLite or PostgreSQL only
        if s.get(AdminLoginThrottle, row["key"]) is None:
            s.add(AdminLoginThrottle(**row))
            s.flush()


def reserve(sessions: sessionmaker[Session], username: str, address: str, now: int) -> Attempt:
    """Count one attempt of (username, address) or raise RateLimitedError while the
    pair is in backoff. Runs before any password check."""
    username, address = username[:MAX_NAME_CHARS], address[:64]
    key = _key(username, address)
    t = AdminLoginThrottle
    with sessions.begin() as s:
        _insert_ignore(
            s,
            {
                "key": key,
                "username": username,
                "address": address,
                "attempts": 0,
                "delay_s": BACKOFF_FIRST_S,
                "blocked_until": 0,
                "updated_at": now,
            },
        )
        # A pair quiet for a while starts afresh (its last block has long expired).
        s.execute(
            update(t)
            .where(t.key == key, t.updated_at <= now - QUIET_RESET_S, t.blocked_until <= now)
            .values(attempts=0, delay_s=BACKOFF_FIRST_S)
        )
        # SET expressions read the row as it was before this statement (SQL semantics).
        starts_backoff = t.attempts + 1 >= FREE_ATTEMPTS
        matched = s.execute(
            update(t)
            .where(t.key == key, t.blocked_until <= now)
            .values(
                attempts=t.attempts + 1,
                updated_at=now,
                blocked_until=case((starts_backoff, now + t.delay_s), else_=0),
                delay_s=case(
                    (starts_backoff & (t.delay_s * 2 > BACKOFF_MAX_S), BACKOFF_MAX_S),
                    (starts_backoff, t.delay_s * 2),
                    else_=t.delay_s,
                ),
            )
        ).rowcount  # type: ignore[attr-defined]
        row = s.get_one(t, key)
        if not matched:
            wait = max(1, row.blocked_until - now)
            raise RateLimitedError(
                f"too many failed logins for this account from this address: "
                f"wait {wait} seconds and try again"
            )
        return Attempt(username, address, row.attempts)


def succeeded(sessions: sessionmaker[Session], attempt: Attempt) -> None:
    """A correct password ends the pair's run."""
    with sessions.begin() as s:
        s.execute(
            update(AdminLoginThrottle)
            .where(AdminLoginThrottle.key == _key(attempt.username, attempt.address))
            .values(attempts=0, delay_s=BACKOFF_FIRST_S, blocked_until=0)
        )


def forget_idle(sessions: sessionmaker[Session], now: int) -> None:
    """Delete pairs idle for a day (keeps the table as small as the attack)."""
    with sessions.begin() as s:
        s.execute(
            delete(AdminLoginThrottle).where(
                AdminLoginThrottle.updated_at <= now - FORGET_AFTER_S,
                AdminLoginThrottle.blocked_until <= now,
            )
        )


def addresses_in_backoff(sessions: sessionmaker[Session], username: str, now: int) -> int:
    """How many addresses are blocked from `username` right now (the audit's pattern)."""
    with sessions() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(AdminLoginThrottle)
                .where(
                    AdminLoginThrottle.username == username[:MAX_NAME_CHARS],
                    AdminLoginThrottle.blocked_until > now,
                )
            )
            or 0
        )


class VerificationGate:
    """At most `limit` password verifications at once; records the peak reached."""

    def __init__(self, limit: int = MAX_CONCURRENT_VERIFICATIONS) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self.limit = limit
        self.running = 0
        self.peak = 0

    @contextmanager
    def slot(self, wait_s: float = VERIFY_WAIT_S) -> Iterator[None]:
        if not self._slots.acquire(timeout=wait_s):
            raise RateLimitedError("the issuer is busy checking other logins: retry shortly")
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1
            self._slots.release()


GATE = VerificationGate()  # one per process: the memory bound is per process
