"""The admin audit log: every admin action (who, when, what, from which address,
through which channel, with what outcome), append-only and hash-chained.

Row n stores `row_hash = SHA-256(DOMAIN || prev_hash || canonical(row))` with
`prev_hash` the previous row's hash (32 zero bytes for the first), so editing or
deleting any row breaks every later hash; `verify_chain` recomputes it (and
issuer.audit_csv re-verifies an exported copy). There is no
update or delete path: the ORM refuses both and the migration adds a database
trigger that refuses them too. The head hash and row count are anchored on the
region's log now and then as an AuditDigest entry (through the issuer's outbox), so
even a database administrator cannot rewrite history unseen. Records hold status
indices, credential ids and key ids, never names or document numbers.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from issuer.errors import IssuerError
from issuer.issuance import add_outbox
from issuer.models import AdminAuditRecord, OutboxRow
from ledger.log.entries import AuditDigest, encode_entry

CHAIN_DOMAIN = b"healthbridge/issuer/admin-audit/v1\n"  # domain separation of row hashes
GENESIS_HASH = bytes(32)
MAX_DETAIL_CHARS = 1000  # characters kept of an action's detail text
MAX_TARGET_CHARS = 128
APPEND_RETRIES = 5  # concurrent appenders race for the next seq; the loser retries
DEFAULT_ANCHOR_INTERVAL_S = 300  # seconds between AuditDigest anchors at most
CSV_COLUMNS = (
    "seq",
    "at",
    "actor",
    "region",
    "action",
    "target",
    "detail",
    "address",
    "channel",
    "outcome",
    "outbox_ids",
    "prev_hash",
    "row_hash",
)


class AuditChainError(IssuerError):
    """The audit log's hash chain does not verify: a row was altered or removed."""

    code = "audit_chain_broken"
    http_status = 409


class Channel(StrEnum):
    CONSOLE = "console"
    API = "api"
    CLI = "cli"


class Outcome(StrEnum):
    OK = "ok"
    DENIED = "denied"
    FAILED = "failed"


@dataclass(frozen=True)
class AuditEvent:
    actor: str
    region: str
    action: str
    target: str
    detail: str
    address: str
    channel: Channel
    outcome: Outcome
    outbox_ids: tuple[int, ...] = ()


def _field(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack(">I", len(raw)) + raw


def chain_hash(prev_hash: bytes, seq: int, at: int, e: AuditEvent) -> bytes:
    """The row hash: length-prefixed fields, so no two rows encode alike."""
    body = struct.pack(">QQ", seq, at) + b"".join(
        _field(v)
        for v in (
            e.actor,
            e.region,
            e.action,
            e.target,
            e.detail,
            e.address,
            e.channel.value,
            e.outcome.value,
            ",".join(str(i) for i in e.outbox_ids),
        )
    )
    return hashlib.sha256(CHAIN_DOMAIN + prev_hash + body).digest()


def event_of(row: AdminAuditRecord) -> AuditEvent:
    ids = tuple(int(x) for x in row.outbox_ids.split(",") if x)
    return AuditEvent(
        row.actor,
        row.region,
        row.action,
        row.target,
        row.detail,
        row.address,
        Channel(row.channel),
        Outcome(row.outcome),
        ids,
    )


def verify_chain(rows: Iterable[AdminAuditRecord], start_hash: bytes = GENESIS_HASH) -> int:
    """Recompute every hash in seq order; return the count or raise AuditChainError."""
    prev, expected_seq, n = start_hash, None, 0
    for row in rows:
        if expected_seq is not None and row.seq != expected_seq:
            raise AuditChainError(f"expected audit row {expected_seq}, found {row.seq}")
        if row.prev_hash != prev:
            raise AuditChainError(f"audit row {row.seq}: prev_hash does not match row before")
        want = chain_hash(prev, row.seq, row.at, event_of(row))
        if want != row.row_hash:
            raise AuditChainError(
                f"audit row {row.seq}: expected hash {want.hex()[:16]}, "
                f"found {row.row_hash.hex()[:16]}"
            )
        prev, expected_seq, n = row.row_hash, row.seq + 1, n + 1
    return n


@event.listens_for(AdminAuditRecord, "before_update")
def _refuse_update(*_args: Any) -> None:
    raise AuditChainError("the admin audit log is append-only: rows cannot be updated")


@event.listens_for(AdminAuditRecord, "before_delete")
def _refuse_delete(*_args: Any) -> None:
    raise AuditChainError("the admin audit log is append-only: rows cannot be deleted")


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def append(session: Session, e: AuditEvent, now: int) -> AdminAuditRecord:
    """Add the next row inside the caller's transaction (seq is the primary key, so two
    concurrent appenders cannot both take it: the loser's commit fails)."""
    e = AuditEvent(
        e.actor,
        e.region,
        e.action,
        _clip(e.target, MAX_TARGET_CHARS),
        _clip(e.detail, MAX_DETAIL_CHARS),
        _clip(e.address, 64),
        e.channel,
        e.outcome,
        e.outbox_ids,
    )
    last = session.execute(
        select(AdminAuditRecord.seq, AdminAuditRecord.row_hash)
        .order_by(AdminAuditRecord.seq.desc())
        .limit(1)
    ).first()
    seq, prev = (1, GENESIS_HASH) if last is None else (last.seq + 1, last.row_hash)
    row = AdminAuditRecord(
        seq=seq,
        at=now,
        actor=e.actor,
        region=e.region,
        action=e.action,
        target=e.target,
        detail=e.detail,
        address=e.address,
        channel=e.channel.value,
        outcome=e.outcome.value,
        outbox_ids=",".join(str(i) for i in e.outbox_ids),
        prev_hash=prev,
        row_hash=chain_hash(prev, seq, now, e),
    )
    session.add(row)
    session.flush()
    return row


def record(sessions: sessionmaker[Session], e: AuditEvent, now: int) -> int:
    """Append in a transaction of its own, retrying a lost race for the seq."""
    for attempt in range(APPEND_RETRIES):
        try:
            with sessions.begin() as s:
                return append(s, e, now).seq
        except IntegrityError:
            if attempt == APPEND_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def head(session: Session) -> tuple[int, bytes]:
    """(row count, hash of the last row) - what an AuditDigest anchors."""
    last = session.execute(
        select(AdminAuditRecord.seq, AdminAuditRecord.row_hash)
        .order_by(AdminAuditRecord.seq.desc())
        .limit(1)
    ).first()
    return (0, GENESIS_HASH) if last is None else (int(last.seq), bytes(last.row_hash))


def rows(session: Session, limit: int | None = None, offset: int = 0) -> list[AdminAuditRecord]:
    q = select(AdminAuditRecord).order_by(AdminAuditRecord.seq.desc()).offset(offset)
    if limit is not None:
        q = q.limit(limit)
    return list(session.scalars(q).all())


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AdminAuditRecord)) or 0)


def verify_all(session: Session) -> int:
    q = select(AdminAuditRecord).order_by(AdminAuditRecord.seq).execution_options(yield_per=1000)
    return verify_chain(session.scalars(q))


AUDIT_DIGEST_KIND = "audit_digest"  # the outbox row kind of an AuditDigest entry


def last_anchored(session: Session) -> tuple[int, int] | None:
    """(count, created_at) of the newest AuditDigest queued on the outbox, if any."""
    row = session.execute(
        select(OutboxRow.ref, OutboxRow.created_at)
        .where(OutboxRow.kind == AUDIT_DIGEST_KIND)
        .order_by(OutboxRow.id.desc())
        .limit(1)
    ).first()
    return None if row is None else (int(row.ref), int(row.created_at))


def anchor_digest(
    sessions: sessionmaker[Session], region: str, now: int, min_interval_s: int = 0
) -> int | None:
    """Queue an AuditDigest(region, head hash, count) for the log when the audit log
    grew since the last one and `min_interval_s` passed; return the outbox id."""
    with sessions.begin() as s:
        n, digest = head(s)
        last = last_anchored(s)
        if n == 0 or (last is not None and (last[0] >= n or now - last[1] < min_interval_s)):
            return None
        entry = encode_entry(AuditDigest(region=region, digest=digest, count=n))
        return add_outbox(s, AUDIT_DIGEST_KIND, str(n), entry, now).id
