"""Enrolment: a one-time code delivered out of band, then the wallet's device key.

Attempts are rate-limited per document number and per client address (rows in
`rate_events`, keyed by an HMAC under the issuer's pseudonym key, so that neither a
document number nor a brute-forceable unkeyed hash of one is stored there). A
rate-limit event is committed before the check's outcome is known, so failed attempts
count. Codes are stored salted and hashed; each is single-use and expires.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from common.b64 import b64url_decode
from issuer.context import IssuerContext
from issuer.device_auth import load_device_key
from issuer.errors import (
    BadRequestError,
    CodeExpiredError,
    RateLimitedError,
    UnknownResidentError,
    WrongCodeError,
)
from issuer.issuance import Issued, issue_first_credential
from issuer.models import EnrolmentCode, Holder, RateEvent, Resident

CODE_DIGITS = 8  # decimal digits of a one-time code
SALT_BYTES = 16
HOLDER_ID_BYTES = 16  # bytes of randomness in an opaque holder id
MAX_DEVICE_KEY_B64_CHARS = 256  # a P-256 SPKI is 91 bytes -> 122 base64url chars


def _serialise_per_key(s: Session, keys: list[str]) -> None:
    """Make concurrent checks of one key take turns until commit.

    Under PostgreSQL's READ COMMITTED, each concurrent attempt would insert its event
    and count only the committed ones plus its own, so thirty simultaneous guesses
    would all pass a limit of five. A transaction-scoped advisory lock per key (taken
    in sorted order, so two checks of overlapping keys cannot deadlock) makes the
    next attempt count after this one commits. SQLite needs nothing: the event's
    INSERT takes the database's write lock until commit, so a concurrent check
    cannot count before this one is committed."""
    if s.get_bind().dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        s.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))


def check_rate(ctx: IssuerContext, keys_limits: list[tuple[str, int]]) -> None:
    """Record one event per key, commit it, then refuse when a key is over its limit."""
    now = ctx.now()
    window_start = now - ctx.config.rate_window_s
    over = False
    with ctx.sessions.begin() as s:
        _serialise_per_key(s, [key for key, _ in keys_limits])
        s.execute(delete(RateEvent).where(RateEvent.at < window_start))
        for key, limit in keys_limits:
            s.add(RateEvent(key=key, at=now))
            s.flush()
            count = s.scalar(
                select(func.count()).where(RateEvent.key == key, RateEvent.at >= window_start)
            )
            over = over or int(count or 0) > limit
    if over:
        raise RateLimitedError(
            f"too many attempts; try again within {ctx.config.rate_window_s} seconds"
        )


def _resident(s: Session, ctx: IssuerContext, document_number: str) -> Resident:
    r = s.scalars(select(Resident).where(Resident.document_number == document_number)).first()
    if r is None or r.region != ctx.region:
        raise UnknownResidentError(f"no resident of {ctx.region} with that document number")
    return r


def request_code(ctx: IssuerContext, document_number: str, client: str) -> tuple[str, int]:
    """Create and deliver a one-time code; returns (delivery description, expires_in s)."""
    cfg = ctx.config
    check_rate(
        ctx,
        [
            (
                f"code-doc:{ctx.keys.pseudonym('rate', ctx.region, document_number)}",
                cfg.code_requests_per_doc,
            ),
            (f"code-addr:{ctx.keys.pseudonym('rate', client)}", cfg.code_requests_per_addr),
        ],
    )
    now = ctx.now()
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    salt = secrets.token_bytes(SALT_BYTES)
    assert ctx.delivery is not None
    with ctx.sessions.begin() as s:
        try:
            resident = _resident(s, ctx, document_number)
        except UnknownResidentError:
            # The same answer as for a resident, and nothing sent: a 404 here told
            # anyone without a key whether a document number is a resident's.
            return ctx.delivery.describe(), cfg.code_ttl_s
        s.add(
            EnrolmentCode(
                resident_id=resident.id,
                salt=salt,
                code_hash=hashlib.sha256(salt + code.encode()).digest(),
                expires_at=now + cfg.code_ttl_s,
                used=False,
            )
        )
    where = ctx.delivery.deliver(document_number, code, now + cfg.code_ttl_s)
    return where, cfg.code_ttl_s


def decode_device_key(text: str) -> bytes:
    if not isinstance(text, str) or not 0 < len(text) <= MAX_DEVICE_KEY_B64_CHARS:
        raise BadRequestError("device_key must be base64url DER SPKI text")
    try:
        der = b64url_decode(text)
    except ValueError as e:
        raise BadRequestError("device_key is not base64url") from e
    load_device_key(der)
    return der


@dataclass(frozen=True)
class Enrolled:
    holder_id: str
    issued: Issued


def enrol(
    ctx: IssuerContext, document_number: str, code: str, device_key: str, client: str
) -> Enrolled:
    cfg = ctx.config
    der = decode_device_key(device_key)
    check_rate(
        ctx,
        [
            (
                f"enrol-doc:{ctx.keys.pseudonym('rate', ctx.region, document_number)}",
                cfg.attempts_per_doc,
            ),
            (f"enrol-addr:{ctx.keys.pseudonym('rate', client)}", cfg.attempts_per_addr),
        ],
    )
    now = ctx.now()
    with ctx.sessions.begin() as s:
        try:
            resident = _resident(s, ctx, document_number)
        except UnknownResidentError as e:
            # Answered as a resident without a valid code is: no residency oracle.
            raise CodeExpiredError("no valid enrolment code: request a new one") from e
        row = s.scalars(
            select(EnrolmentCode)
            .where(EnrolmentCode.resident_id == resident.id, EnrolmentCode.used.is_(False))
            .order_by(EnrolmentCode.id.desc())
            .limit(1)
        ).first()
        if row is None or row.expires_at <= now:
            raise CodeExpiredError("no valid enrolment code: request a new one")
        candidate = hashlib.sha256(row.salt + code.encode()).digest()
        if not hmac.compare_digest(candidate, row.code_hash):
            raise WrongCodeError("the enrolment code does not match the one delivered")
        row.used = True
        holder = Holder(
            holder_id=secrets.token_urlsafe(HOLDER_ID_BYTES),
            resident_id=resident.id,
            device_key=der,
            via="enrolment",
            created_at=now,
            last_auth_ts=0,
        )
        s.add(holder)
        s.flush()
        issued = issue_first_credential(ctx, s, holder, now)
    return Enrolled(holder.holder_id, issued)
