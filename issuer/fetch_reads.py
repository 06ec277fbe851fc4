"""The reads of a wallet's credential fetch, each ONE statement: `FETCH_STATE` per
request (authentication and the unchanged-credential answer, on a read connection) and
`GROUP_STATE` per group commit (issuer.group_commit).

Each returns plain values (`HolderView`, `IssuedCredential`) or the few ORM entities a
group writes to; the status decision and the reuse rule stay in issuer.issuance. What it
does not do: write, sign, or decide the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, String, and_, bindparam, cast, func, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from issuer.context import IssuerContext
from issuer.db import DriverRead
from issuer.errors import ConflictError
from issuer.issuance import (
    KEY_STATE_OF_CREDENTIAL,
    RECORDS_THAT_CAN_DECIDE,
    Issued,
    IssuedCredential,
    converted_status,
    decide_from_rows,
    fits_time,
)
from issuer.models import (
    CredentialRow,
    HealthRecordRow,
    Holder,
    OutboxRow,
    Resident,
    SigningKeyRow,
    StatusOverrideRow,
)
from issuer.status_rules import StatusDecision

_LATEST_ACTIVE_ID = (
    select(func.max(CredentialRow.id))
    .where(CredentialRow.holder_pk == Holder.id, CredentialRow.state == "active")
    .correlate(Holder)
    .scalar_subquery()
)
_HOLDER_OVERRIDE_ID = (
    select(func.max(StatusOverrideRow.id))
    .where(
        StatusOverrideRow.resident_id == Holder.resident_id,
        StatusOverrideRow.active.is_(True),
    )
    .correlate(Holder)
    .scalar_subquery()
)
# The read path in ONE round trip (and one snapshot, which matters on PostgreSQL where
# read sessions run in autocommit): the holder, its latest active credential, that
# credential's outbox row, and the status inputs of its resident (one row per health
# record, or one row of NULLs, each carrying the active override). Five statements
# before: holder, credential, outbox row, records, override. Plain columns, only those
# the fetch reads, run on a Core connection: loading them as ORM objects through a
# session cost more CPU than the round trip.
_HOLDER_COLUMNS = (
    Holder.id.label("h_id"),
    Holder.resident_id.label("h_resident_id"),
    Holder.device_key.label("h_device_key"),
    Holder.last_auth_ts.label("h_last_auth_ts"),
    Holder.source_region.label("h_source_region"),
    Holder.source_status_index.label("h_source_status_index"),
    Holder.source_revoked_at.label("h_source_revoked_at"),
    Holder.carried_colour.label("h_carried_colour"),
    Holder.carried_basis.label("h_carried_basis"),
    Holder.carried_basis_time.label("h_carried_basis_time"),
    Holder.carried_until.label("h_carried_until"),
)
_CREDENTIAL_COLUMNS = (
    CredentialRow.credential_id,
    CredentialRow.status_index,
    CredentialRow.holder_pk,
    CredentialRow.kid,
    CredentialRow.colour,
    CredentialRow.basis,
    CredentialRow.rule,
    CredentialRow.issued_at,
    CredentialRow.expires_at,
    CredentialRow.digest,
    CredentialRow.jws,
    CredentialRow.state,
    KEY_STATE_OF_CREDENTIAL,  # a compromised key's credential is not handed out again
)
FETCH_STATE = (
    select(
        *_HOLDER_COLUMNS,
        *_CREDENTIAL_COLUMNS,
        OutboxRow.id.label("outbox_id"),
        HealthRecordRow.kind.label("kind"),
        HealthRecordRow.at.label("at"),
        HealthRecordRow.result.label("result"),
        StatusOverrideRow.colour.label("o_colour"),
        StatusOverrideRow.at.label("o_at"),
        StatusOverrideRow.until.label("o_until"),
    )
    .select_from(Holder)
    .outerjoin(CredentialRow, CredentialRow.id == _LATEST_ACTIVE_ID)
    .outerjoin(
        OutboxRow,
        and_(
            OutboxRow.kind == "credential_anchored",
            OutboxRow.ref == cast(CredentialRow.status_index, String),
        ),
    )
    .outerjoin(
        HealthRecordRow,
        and_(HealthRecordRow.resident_id == Holder.resident_id, RECORDS_THAT_CAN_DECIDE),
    )
    .outerjoin(StatusOverrideRow, StatusOverrideRow.id == _HOLDER_OVERRIDE_ID)
    .where(Holder.holder_id == bindparam("holder_id"))
)


# The active signing key at `now`, as a one-row subquery joined to GROUP_STATE.
_ACTIVE_KEY_ROW = (
    select(
        SigningKeyRow.kid.label("key_kid"),
        SigningKeyRow.alg.label("key_alg"),
        SigningKeyRow.not_after.label("key_not_after"),
    )
    .where(
        SigningKeyRow.state == "active",
        SigningKeyRow.not_before <= bindparam("now"),
        SigningKeyRow.not_after > bindparam("now"),
    )
    .order_by(SigningKeyRow.not_before.desc())
    .limit(1)
    .subquery("active_key")
)
# What a group commit reads, in ONE round trip: every holder of the group with its
# resident (ORM entities: the holders' marks are updated, the residents' names masked),
# its latest active credential and that credential's outbox row, its status inputs,
# and the active signing key. Four statements before (holders, credentials, status
# inputs, key), plus one per reused credential for its outbox row.
GROUP_STATE = (
    select(
        Holder,
        Resident,
        *_CREDENTIAL_COLUMNS,
        OutboxRow.id.label("outbox_id"),
        HealthRecordRow.kind.label("kind"),
        HealthRecordRow.at.label("at"),
        HealthRecordRow.result.label("result"),
        StatusOverrideRow.colour.label("o_colour"),
        StatusOverrideRow.at.label("o_at"),
        StatusOverrideRow.until.label("o_until"),
        _ACTIVE_KEY_ROW.c.key_kid,
        _ACTIVE_KEY_ROW.c.key_alg,
        _ACTIVE_KEY_ROW.c.key_not_after,
    )
    .select_from(Holder)
    .outerjoin(Resident, Resident.id == Holder.resident_id)
    .outerjoin(CredentialRow, CredentialRow.id == _LATEST_ACTIVE_ID)
    .outerjoin(
        OutboxRow,
        and_(
            OutboxRow.kind == "credential_anchored",
            OutboxRow.ref == cast(CredentialRow.status_index, String),
        ),
    )
    .outerjoin(
        HealthRecordRow,
        and_(HealthRecordRow.resident_id == Holder.resident_id, RECORDS_THAT_CAN_DECIDE),
    )
    .outerjoin(StatusOverrideRow, StatusOverrideRow.id == _HOLDER_OVERRIDE_ID)
    .outerjoin(_ACTIVE_KEY_ROW, true())
    .where(Holder.id.in_(bindparam("holders", expanding=True)))
)


@dataclass(frozen=True)
class ActiveKey:
    """The signing key a group uses (the columns issue_many reads)."""

    kid: str
    alg: str
    not_after: int


def group_state(
    session: Session, holder_pks: Sequence[int], now: int, records_at: int
) -> tuple[dict[int, HolderState], ActiveKey | None, Sequence[Any]]:
    """GROUP_STATE for the holders `holder_pks` (a missing holder is left out), the
    signing key active at `now`, the health records that can still decide a status at
    `records_at` or later, and the rows read: keep them while the holders and residents
    are in use (the session's identity map holds only weak references)."""
    params = {"holders": sorted(set(holder_pks)), "now": now, "records_at": records_at}
    rows = session.execute(GROUP_STATE, params).all()
    by_holder: dict[int, list[Any]] = {}
    for r in rows:
        by_holder.setdefault(r[0].id, []).append(r)
    states = {}
    for pk, mine in by_holder.items():
        first = mine[0]
        latest = None if first.status_index is None else IssuedCredential.of(first)
        states[pk] = HolderState(first[0], latest, first.outbox_id, tuple(mine))
    key = None
    if rows and rows[0].key_kid is not None:
        key = ActiveKey(rows[0].key_kid, rows[0].key_alg, rows[0].key_not_after)
    return states, key, rows


@dataclass(frozen=True)
class HolderView:
    """The columns of a `holders` row that a credential fetch reads (FETCH_STATE):
    enough to authenticate the device and decide the status, read-only."""

    id: int
    holder_id: str
    resident_id: int | None
    device_key: bytes
    last_auth_ts: int
    source_region: str | None
    source_status_index: int | None
    source_revoked_at: int | None
    carried_colour: str | None
    carried_basis: str | None
    carried_basis_time: int | None
    carried_until: int | None


@dataclass(frozen=True)
class HolderState:
    """What one statement read for one holder: GROUP_STATE (a group commit, the ORM
    `Holder` it will update) or FETCH_STATE (a fetch, the read-only `HolderView`)."""

    holder: Holder | HolderView
    latest: IssuedCredential | None
    outbox_id: int | None
    status_rows: tuple[Any, ...]  # `decide_from_rows` input of the holder's resident

    def status(self, now: int) -> StatusDecision:
        if self.holder.resident_id is not None:
            return decide_from_rows(self.status_rows, now)
        return converted_status(self.holder, now)  # no SQL


FetchState = HolderState  # a fetch's state; its holder is a HolderView


def fetch_state(conn: Connection, holder_id: str, now: int) -> FetchState | None:
    """The holder `holder_id` and what its fetch at `now` needs, in one statement (None:
    no such holder). `conn`: a read connection (IssuerContext.read_connection)."""
    params = {"holder_id": holder_id, "records_at": now}
    return _state_of(conn.execute(FETCH_STATE, params).all(), holder_id)


# FETCH_STATE compiled once per engine (issuer.db.DriverRead); an engine
# no longer referenced drops out.
_DRIVER_READS: WeakKeyDictionary[Engine, DriverRead] = WeakKeyDictionary()


def read_fetch_state(ctx: IssuerContext, holder_id: str, now: int) -> FetchState | None:
    """`fetch_state` run on a pooled driver connection of `ctx`, without SQLAlchemy's
    execution layer (issuer.db.DriverRead: the same statement, the same isolation,
    about a third less CPU per credential fetch: docs/performance.md)."""
    engine = ctx.sessions.kw["bind"]
    query = _DRIVER_READS.get(engine)
    if query is None:
        query = _DRIVER_READS.setdefault(engine, DriverRead(engine, FETCH_STATE))
    return _state_of(query.rows({"holder_id": holder_id, "records_at": now}), holder_id)


def _state_of(rows: Sequence[Any], holder_id: str) -> FetchState | None:
    if not rows:
        return None
    first = rows[0]
    holder = HolderView(
        first.h_id,
        holder_id,
        first.h_resident_id,
        bytes(first.h_device_key),
        first.h_last_auth_ts,
        first.h_source_region,
        first.h_source_status_index,
        first.h_source_revoked_at,
        first.h_carried_colour,
        first.h_carried_basis,
        first.h_carried_basis_time,
        first.h_carried_until,
    )
    latest = None if first.status_index is None else IssuedCredential.of(first)
    return FetchState(holder, latest, first.outbox_id, tuple(rows))


def unchanged_credential(ctx: IssuerContext, state: FetchState, now: int) -> Issued | None:
    """Like `reusable_credential`, from what `fetch_state` read (no statement at all),
    deciding the status only when the current credential is not already due by time (a
    cheap check first: read paths call this on every fetch). A status the rules refuse
    (an expired conversion) gives None."""
    row = state.latest
    if row is None or not fits_time(ctx, row, now):
        return None
    try:
        decision = state.status(now)
    except ConflictError:
        return None
    if row.colour == decision.colour.value and row.basis == decision.basis.value:
        return Issued(row, int(state.outbox_id or 0), False)
    return None
