"""Credentials issued and revoked per UTC hour, kept as running counts.

Why: the console's overview shows a day of activity by hour. Counting it from the
outbox reads every row of the day, and a region the size of Guangdong writes some
130 million of them a day: the page would take minutes (docs/performance.md). So each
transaction that writes an anchor (`credential_anchored`) or revocation
(`credential_revoked`) outbox row also adds to a small table of counts per (hour,
kind), in the same transaction: the counts are exactly what committed, a rolled-back
transaction counts nothing, and the overview reads at most 24 × 2 × `SLOTS` rows
whatever the day's volume.

The same transaction also counts a holder's first credential under the channel it
came through (`first_enrolment`, `first_conversion`): issuer.metrics derives its
issuance counters (enrolment, conversion, refresh = anchored minus firsts) from these
exact counts, so a row that commits late behind a newer one is counted all the same.
Readers pick the kinds they show: the overview reads `credential_anchored` and
`credential_revoked` only.

How: writers note what they add in the session (`note`); just before the session
commits, one upsert per (hour, kind) adds the transaction's totals. Each commit adds
to one of `SLOTS` rows of its (hour, kind), chosen at random, so that concurrent
writers (issuer replicas, anchoring workers, a bulk revocation) rarely wait on the same
row lock; readers sum the slots. Rows are upserted in key order, so two transactions
never take the same two row locks in opposite orders.

What it does not: count anything else, or prune: the table grows by at most
24 × 4 × `SLOTS` rows a day (`prune` drops hours older than a cut-off; keep at least
issuer.metrics.LATE_COMMIT_S of them, the hours its counters re-read).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, exists, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, aliased, sessionmaker

from issuer.models import ActivityHourRow, CredentialRow, Holder, OutboxRow

ISSUED_KIND = "credential_anchored"  # outbox kinds (issuer.issuance)
REVOKED_KIND = "credential_revoked"
# A holder's first credential, by the channel it came through (Holder.via); noted by
# issuer.issuance.issue_first_credential beside its `credential_anchored` count.
FIRST_ENROLMENT_KIND = "first_enrolment"
FIRST_CONVERSION_KIND = "first_conversion"
FIRST_KINDS = {"enrolment": FIRST_ENROLMENT_KIND, "conversion": FIRST_CONVERSION_KIND}
OUTBOX_KINDS = (ISSUED_KIND, REVOKED_KIND)  # counted from outbox rows of that kind
COUNTED_KINDS = (*OUTBOX_KINDS, FIRST_ENROLMENT_KIND, FIRST_CONVERSION_KIND)
HOUR_S = 3600  # seconds
SLOTS = 16  # rows per (hour, kind) that concurrent commits spread over
_PENDING = "hb_activity"  # session.info key: this transaction's counts, not yet written


def hour_of(t: int) -> int:
    """The start (Unix time) of the UTC hour holding `t`."""
    return t - t % HOUR_S


def first_kind(via: str) -> str:
    """The kind counting a holder's first credential through channel `via`."""
    try:
        return FIRST_KINDS[via]
    except KeyError:
        raise ValueError(f"expected a channel in {sorted(FIRST_KINDS)}, found {via!r}") from None


def note(session: Session, kind: str, at: int, n: int = 1) -> None:
    """Count `n` outbox rows of `kind` written at `at` in the session's transaction;
    written when it commits. Kinds other than COUNTED_KINDS are ignored."""
    if kind in COUNTED_KINDS and n > 0:
        pending: Counter[tuple[int, str]] = session.info.setdefault(_PENDING, Counter())
        pending[(hour_of(at), kind)] += n


def _upsert(conn: Connection, values: list[dict[str, Any]]) -> None:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(ActivityHourRow)
    elif dialect == "sqlite":
        stmt = sqlite.insert(ActivityHourRow)
    else:  # pragma: no cover - the issuer runs on SQLite or PostgreSQL only
        raise ValueError(f"unsupported database {dialect!r}")
    stmt = stmt.on_conflict_do_update(
        index_elements=["hour", "kind", "slot"],
        set_={"n": ActivityHourRow.n + stmt.excluded.n},
    )
    for v in values:  # one statement per row, in key order (see the module's note)
        conn.execute(stmt, v)


def _flush(session: Session) -> None:
    pending: Counter[tuple[int, str]] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    slot = random.randrange(SLOTS)
    values = [
        {"hour": hour, "kind": kind, "slot": slot, "n": n}
        for (hour, kind), n in sorted(pending.items())
    ]
    _upsert(session.connection(), values)


def _discard(session: Session, *_: Any) -> None:
    session.info.pop(_PENDING, None)


def track(sessions: sessionmaker[Session]) -> None:
    """Write noted counts in the transaction that noted them (before its commit) and
    forget them when it rolls back."""
    from sqlalchemy import event

    event.listen(sessions, "before_commit", _flush)
    event.listen(sessions, "after_rollback", _discard)


def counts_since(
    session: Session, start: int, kinds: Iterable[str] = COUNTED_KINDS
) -> list[tuple[int, str, int]]:
    """(hour, kind, count) for every hour from `start` on and each of `kinds`, slots
    summed: a range of the primary key (hour, kind, slot)."""
    rows = session.execute(
        select(ActivityHourRow.hour, ActivityHourRow.kind, func.sum(ActivityHourRow.n))
        .where(ActivityHourRow.hour >= start, ActivityHourRow.kind.in_(list(kinds)))
        .group_by(ActivityHourRow.hour, ActivityHourRow.kind)
    ).all()
    return [(int(h), str(k), int(n)) for h, k, n in rows]


def first_outbox_id_from(session: Session, t: int) -> int | None:
    """The smallest outbox row id created at or after `t`, by binary search on the
    primary key (rows are written with the time of their transaction, so ids grow
    with time): about log2(rows) indexed lookups, never a scan. None: no such row."""
    return _first_id_from(session, OutboxRow.id, OutboxRow.created_at, t)


def _first_id_from(session: Session, id_col: Any, time_col: Any, t: int) -> int | None:
    """The smallest id whose row's time is at or after `t` (binary search on the
    primary key, ids growing with time); None: no such row."""
    lo, hi = session.execute(select(func.min(id_col), func.max(id_col))).one()
    if lo is None:
        return None
    newest = session.scalar(select(time_col).where(id_col == hi))
    if newest is None or newest < t:
        return None
    lo, hi = int(lo), int(hi)
    while lo < hi:
        row = session.execute(
            select(id_col, time_col).where(id_col >= (lo + hi) // 2).order_by(id_col).limit(1)
        ).one()
        if row[1] >= t:
            hi = int(row[0])
        else:
            lo = int(row[0]) + 1
    return lo


def recount(session: Session, since: int) -> None:
    """Count the hours from `since` on again, replacing what the table holds for them:
    the outbox kinds from the outbox (only rows from the first one created in that
    hour on: `first_outbox_id_from`), the first-credential kinds from the credentials
    issued from then on whose holder has no earlier one, by the holder's channel. For
    databases filled without the issuer's own writers (a restore, a benchmark's bulk
    load); the running counts never need it. The issuance counters of a running
    process (issuer.metrics) see the hours recounted change by the difference."""
    since = hour_of(since)
    session.execute(delete(ActivityHourRow).where(ActivityHourRow.hour >= since))
    values: list[dict[str, Any]] = []
    first_outbox_id = first_outbox_id_from(session, since)
    if first_outbox_id is not None:
        hour = OutboxRow.created_at - OutboxRow.created_at % HOUR_S
        rows: Iterable[Any] = session.execute(
            select(hour, OutboxRow.kind, func.count())
            .where(
                OutboxRow.id >= first_outbox_id,
                OutboxRow.created_at >= since,
                OutboxRow.kind.in_(OUTBOX_KINDS),
            )
            .group_by(hour, OutboxRow.kind)
        ).all()
        values += [{"hour": int(h), "kind": k, "slot": 0, "n": int(n)} for h, k, n in rows]
    first_credential_id = _first_id_from(session, CredentialRow.id, CredentialRow.issued_at, since)
    if first_credential_id is not None:
        earlier = aliased(CredentialRow)
        hour = CredentialRow.issued_at - CredentialRow.issued_at % HOUR_S
        rows = session.execute(
            select(hour, Holder.via, func.count())
            .join(Holder, Holder.id == CredentialRow.holder_pk)
            .where(
                CredentialRow.id >= first_credential_id,
                CredentialRow.issued_at >= since,
                Holder.via.in_(list(FIRST_KINDS)),
                ~exists().where(
                    earlier.holder_pk == CredentialRow.holder_pk, earlier.id < CredentialRow.id
                ),
            )
            .group_by(hour, Holder.via)
        ).all()
        values += [
            {"hour": int(h), "kind": FIRST_KINDS[via], "slot": 0, "n": int(n)} for h, via, n in rows
        ]
    if values:
        session.execute(insert(ActivityHourRow), values)


def prune(session: Session, before: int) -> int:
    """Drop the counts of hours that started before `before`; returns rows dropped."""
    result = session.execute(delete(ActivityHourRow).where(ActivityHourRow.hour < before))
    return int(getattr(result, "rowcount", 0) or 0)
