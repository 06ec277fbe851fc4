"""Issuing credentials: status index allocation, signing, the anchoring outbox, and the
revocation of a resident's outstanding credentials when their status changes.

Every issuance writes the credential row and its outbox row (the CredentialAnchored
entry bytes) in ONE database transaction: either both exist or neither does, so a
crash at any instant never leaves a credential that will not be anchored (the anchor
worker, issuer.anchor, drains the outbox). Status indices come from a counter row
incremented inside the same transaction: a committed index is never handed out again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy import Sequence as DbSequence
from sqlalchemy.orm import Session

from credential.claims import HealthClaims, SourceRef, StatusBasis, StatusColour
from credential.issue import credential_digest, is_current_format, sign_credential
from credential.keys import SigningAlg
from issuer import activity, log_entries
from issuer.context import IssuerContext
from issuer.errors import ConflictError, ConversionSourceRevokedError, SigningKeyError
from issuer.masking import document_hint, mask_name
from issuer.models import (
    Counter,
    CredentialRow,
    HealthRecordRow,
    Holder,
    OutboxRow,
    Resident,
    SigningKeyRow,
    StatusOverrideRow,
)
from issuer.sharding import check_expiry_fits, shard_of_expiry, shard_plan
from issuer.status_rules import (
    RECORD_HORIZON_S,
    HealthRecord,
    LabResult,
    Override,
    RecordKind,
    StatusDecision,
    StatusRule,
    decide_status,
)

STATUS_INDEX_COUNTER = "status_index"
REVOKE_REASON_STATUS_CHANGE = "status_change"
KEY_COMPROMISED = "compromised"  # the state issuer.keymgmt gives a key revoked for compromise

# The statements of every credential fetch, built once: building a statement (argument
# coercion, cache key) cost more than running it on SQLite. Values go in as bind
# parameters at execution.
_ADD_TO_COUNTER = (
    update(Counter)
    .where(Counter.name == STATUS_INDEX_COUNTER)
    .values(value=Counter.value + bindparam("count"))
    .returning(Counter.value)
)
# PostgreSQL: `count` values of the status index sequence in one round trip.
STATUS_INDEX_SEQUENCE = DbSequence("status_index_seq")
_RESERVE_FROM_SEQUENCE = select(STATUS_INDEX_SEQUENCE.next_value()).select_from(
    func.generate_series(1, bindparam("count", type_=BigInteger))
)
_ACTIVE_KEY = (
    select(SigningKeyRow)
    .where(
        SigningKeyRow.state == "active",
        SigningKeyRow.not_before <= bindparam("now"),
        SigningKeyRow.not_after > bindparam("now"),
    )
    .order_by(SigningKeyRow.not_before.desc())
    .limit(1)
)
# The state of one signing key, share-locked until commit (signing_key_for). KEY SHARE
# is the weakest row lock PostgreSQL has: it conflicts only with the FOR UPDATE of a key
# change (issuer.keymgmt), so concurrent issuances never wait on each other.
_LOCK_KEY = (
    select(SigningKeyRow.state)
    .where(SigningKeyRow.kid == bindparam("kid"))
    .with_for_update(read=True, key_share=True)
)
_LATEST_OVERRIDE_ID = (
    select(func.max(StatusOverrideRow.id))
    .where(StatusOverrideRow.resident_id == Resident.id, StatusOverrideRow.active.is_(True))
    .correlate(Resident)
    .scalar_subquery()
)


def _records_that_can_decide() -> ColumnElement[bool]:
    """The health records that can still change a status decided at or after the bind
    parameter `records_at` (status_rules.RECORD_HORIZON_S), as a join condition: a
    status read returns rows bounded by the rules' periods, not by the resident's
    history (a resident testing every three days for a year has 120 tests, of which at
    most five can matter). A record kept for `records_at` is kept for any later time."""
    now = bindparam("records_at", type_=BigInteger)
    terms = []
    for kind, horizon in RECORD_HORIZON_S.items():
        is_kind = HealthRecordRow.kind == kind.value
        terms.append(
            is_kind if horizon is None else and_(is_kind, HealthRecordRow.at > now - horizon)
        )
    return or_(*terms)


RECORDS_THAT_CAN_DECIDE = _records_that_can_decide()
# Everything a status decision reads, in ONE statement: one row per health record that
# can still decide (or one row of NULLs when there is none), each carrying the active
# override, if any.
_STATUS_COLUMNS = (
    Resident.id.label("resident_id"),
    HealthRecordRow.kind,
    HealthRecordRow.at,
    HealthRecordRow.result,
    StatusOverrideRow.colour.label("o_colour"),
    StatusOverrideRow.at.label("o_at"),
    StatusOverrideRow.until.label("o_until"),
)
_STATUS_FROM = (
    select(*_STATUS_COLUMNS)
    .select_from(Resident)
    .outerjoin(
        HealthRecordRow,
        and_(HealthRecordRow.resident_id == Resident.id, RECORDS_THAT_CAN_DECIDE),
    )
    .outerjoin(StatusOverrideRow, StatusOverrideRow.id == _LATEST_OVERRIDE_ID)
)
_STATUS_INPUTS = _STATUS_FROM.where(Resident.id == bindparam("resident"))
# The state of the key a credential was signed with, as a column of the credential
# fetch reads (issuer.fetch_reads): `key_state`, read by IssuedCredential.of.
KEY_STATE_OF_CREDENTIAL = (
    select(SigningKeyRow.state)
    .where(SigningKeyRow.kid == CredentialRow.kid)
    .correlate(CredentialRow)
    .scalar_subquery()
    .label("key_state")
)
_LATEST_ACTIVE = (
    select(CredentialRow, KEY_STATE_OF_CREDENTIAL)
    .where(CredentialRow.holder_pk == bindparam("holder"), CredentialRow.state == "active")
    .order_by(CredentialRow.id.desc())
    .limit(1)
)
# The residents behind a set of holders, row-locked until commit, in id order (two
# groups lock in the same order, so they never deadlock). See lock_residents.
_LOCK_RESIDENTS = (
    select(Resident.id)
    .where(
        Resident.id.in_(
            select(Holder.resident_id).where(Holder.id.in_(bindparam("holders", expanding=True)))
        )
    )
    .order_by(Resident.id)
    .with_for_update()
)
_INSERT_CREDENTIALS = insert(CredentialRow)
# Outbox ids in the order of the rows given (SQLAlchemy "insertmanyvalues" with a
# sentinel: one multi-row INSERT ... RETURNING, ids matched to their parameters).
_INSERT_OUTBOX = insert(OutboxRow).returning(OutboxRow.id, sort_by_parameter_order=True)
_ANCHOR_ROW = select(OutboxRow.id).where(
    OutboxRow.kind == "credential_anchored", OutboxRow.ref == bindparam("ref")
)


@dataclass(frozen=True)
class IssuedCredential:
    """A credential handed to a wallet: the columns of its `credentials` row that
    callers read. A plain value, not an ORM object: building and flushing two ORM
    objects per credential cost more than signing it (issue_many)."""

    credential_id: str
    status_index: int
    holder_pk: int
    kid: str
    colour: str
    basis: str
    rule: str
    issued_at: int
    expires_at: int
    digest: bytes
    jws: str
    state: str = "active"
    # Signed by a key since revoked for compromise: stations refuse it (all of them in
    # compact mode, those anchored after the compromise time in full mode).
    key_compromised: bool = False

    @classmethod
    def of(cls, row: Any, key_state: str | None = None) -> IssuedCredential:
        """From a `credentials` row (an ORM object or a Core row with those columns),
        and the state of its signing key (`key_state`, or the row's `key_state` column
        when it has one: KEY_STATE_OF_CREDENTIAL)."""
        if key_state is None:
            key_state = getattr(row, "key_state", None)
        return cls(
            row.credential_id,
            row.status_index,
            row.holder_pk,
            row.kid,
            row.colour,
            row.basis,
            row.rule,
            row.issued_at,
            row.expires_at,
            row.digest,
            row.jws,
            row.state,
            key_state == KEY_COMPROMISED,
        )


@dataclass(frozen=True)
class Issued:
    credential: IssuedCredential
    outbox_id: int
    fresh: bool  # False when the holder's current credential was returned unchanged


def ensure_counters(session: Session) -> None:
    if session.get(Counter, STATUS_INDEX_COUNTER) is None:
        session.add(Counter(name=STATUS_INDEX_COUNTER, value=0))
        session.flush()


def next_status_index(session: Session) -> int:
    """Reserve and return one of the region's status indices (next_status_indices)."""
    return next_status_indices(session, 1)[0]


def next_status_indices(session: Session, count: int) -> Sequence[int]:
    """Reserve `count` fresh status indices, in increasing order.

    On PostgreSQL they come from the sequence `status_index_seq` (migration 0830):
    `nextval` takes no lock that lasts to commit, so the issuer replicas of a region
    (and the group commits of one) reserve indices while another transaction is still
    committing. The counter row did that with `UPDATE ... RETURNING`, whose row lock
    each transaction held through its commit: every issuance of the region, on every
    host, queued behind the previous one's durable commit. A rolled-back transaction
    leaves its indices unused; the ledger asks only that an index is anchored once
    (ledger.log.rules, `duplicate_status_index`), and the stations' bitmaps take gaps.
    On SQLite (one writer at a time) the counter row gives consecutive indices."""
    if count <= 0:
        raise ValueError(f"expected a positive count of status indices, found {count}")
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        return sorted(conn.execute(_RESERVE_FROM_SEQUENCE, {"count": count}).scalars())
    # A plain Core UPDATE ... RETURNING on the session's connection: the ORM's bulk
    # update path (session synchronisation) cost more than the statement itself. The
    # counter row is created on first use only, so the common case is one statement.
    value = session.connection().execute(_ADD_TO_COUNTER, {"count": count}).scalar_one_or_none()
    if value is None:
        ensure_counters(session)
        value = session.connection().execute(_ADD_TO_COUNTER, {"count": count}).scalar_one()
    return range(int(value) - count + 1, int(value) + 1)


def add_outbox(
    session: Session, kind: str, ref: str, entry: bytes, now: int, shard: int | None = None
) -> OutboxRow:
    row = OutboxRow(
        kind=kind, ref=ref, entry=entry, created_at=now, attempts=0, next_attempt_at=0.0,
        shard=shard,
    )  # fmt: skip
    session.add(row)
    session.flush()
    activity.note(session, kind, now)  # the overview's hourly counts (issuer.activity)
    return row


def active_signing_key(session: Session, now: int) -> SigningKeyRow:
    row = session.scalars(_ACTIVE_KEY, {"now": now}).first()
    if row is None:
        raise SigningKeyError("no active signing key: run `healthbridge issuer keys rotate`")
    return row


def _still_active(session: Session, kid: str) -> bool:
    # A locking read sees the row's latest committed version (PostgreSQL re-reads it
    # once a conflicting lock is released), not the statement snapshot the key was
    # chosen from.
    state = session.connection().execute(_LOCK_KEY, {"kid": kid}).scalar_one_or_none()
    return state == "active"


def signing_key_for(
    session: Session, now: int, chosen: SigningKeyChoice | None = None
) -> SigningKeyChoice:
    """The key to sign with at `now` (`chosen`, when the caller read it already),
    share-locked until the caller commits.

    A key change (issuer.keymgmt) row-locks the active keys before it takes the
    retirement time and writes its log entries, so it waits for every issuance that
    holds the key: what the old key signed commits, and enters the outbox, before the
    `KeyRevoked` entry, with an `iat` before its `retired_at`. Without the lock, on
    PostgreSQL (READ COMMITTED) an issuance that chose the key just before a rotation
    committed signed with the retired key after it: its anchor reached the log behind
    the retirement and was refused (`key_not_active`), so the credential was never
    anchored. An issuance whose key was retired while it waited takes the new key.
    SQLite runs writers one at a time (BEGIN IMMEDIATE): no lock is taken there."""
    key: SigningKeyChoice = chosen if chosen is not None else active_signing_key(session, now)
    if session.get_bind().dialect.name == "sqlite":
        return key  # one writer at a time: no key change can commit meanwhile
    if _still_active(session, key.kid):
        return key
    key = active_signing_key(session, now)  # committed by the key change we waited for
    if _still_active(session, key.kid):
        return key
    raise SigningKeyError("the signing key changed twice during this issuance: retry")


def decide_from_rows(rows: Sequence[Any], now: int) -> StatusDecision:
    """The status of one resident from its `_STATUS_FROM` rows."""
    records = [
        HealthRecord(RecordKind(r.kind), r.at, LabResult(r.result) if r.result else None)
        for r in rows
        if r.kind is not None
    ]
    first = rows[0] if rows else None
    override = (
        None
        if first is None or first.o_colour is None
        else Override(StatusColour(first.o_colour), first.o_at, first.o_until)
    )
    return decide_status(records, now, override)


def lock_residents(session: Session, holder_pks: Sequence[int]) -> None:
    """Row-lock the residents of these holders until commit, before their status is read.

    A status change (a record, an admin override) locks its resident the same way
    before it reads the status `before` and revokes what is outstanding. Without the
    two locks, on PostgreSQL (READ COMMITTED) a fetch that read "green" just before a
    red record committed could insert its fresh green credential just after the
    status change listed the outstanding ones: a red resident kept a green credential
    to its expiry. With them, either the fetch commits first and the status change
    revokes its credential, or the status change commits first and the fetch reads
    red. SQLite runs writers one at a time (BEGIN IMMEDIATE) and ignores FOR UPDATE.
    Converted holders have no resident here; their status follows their source."""
    if holder_pks:
        session.connection().execute(_LOCK_RESIDENTS, {"holders": list(holder_pks)})


def lock_resident(session: Session, resident_id: int) -> None:
    """Row-lock one resident until commit (the status-change side of lock_residents)."""
    session.connection().execute(
        select(Resident.id).where(Resident.id == resident_id).with_for_update()
    )


def resident_status(session: Session, resident_id: int, now: int) -> StatusDecision:
    rows = (
        session.connection()
        .execute(_STATUS_INPUTS, {"resident": resident_id, "records_at": now})
        .all()
    )
    return decide_from_rows(rows, now)


def holder_status(session: Session, holder: Holder, now: int) -> StatusDecision:
    if holder.resident_id is not None:
        return resident_status(session, holder.resident_id, now)
    return converted_status(holder, now)


class ConvertedHolder(Protocol):
    """The columns of a converted holder that its status comes from (a `Holder` row or
    an issuer.fetch_reads.HolderView)."""

    @property
    def source_region(self) -> str | None: ...
    @property
    def source_status_index(self) -> int | None: ...
    @property
    def source_revoked_at(self) -> int | None: ...
    @property
    def carried_colour(self) -> str | None: ...
    @property
    def carried_basis(self) -> str | None: ...
    @property
    def carried_basis_time(self) -> int | None: ...
    @property
    def carried_until(self) -> int | None: ...


class SigningKeyChoice(Protocol):
    """The columns of the signing key issue_many reads (a `SigningKeyRow` or an
    issuer.fetch_reads.ActiveKey read with its group)."""

    @property
    def kid(self) -> str: ...
    @property
    def alg(self) -> str: ...
    @property
    def not_after(self) -> int: ...


def converted_status(holder: ConvertedHolder, now: int) -> StatusDecision:
    """A converted holder's status, from its own row (no SQL)."""
    # A converted holder: the other region's decision, valid until that credential ends
    # and only while that credential stands (issuer.lineage marks a revoked source).
    if holder.source_revoked_at is not None:
        raise ConversionSourceRevokedError(
            f"the source credential in {holder.source_region} was revoked: convert a valid one"
        )
    if holder.carried_until is None or holder.carried_until <= now:
        raise ConflictError("the converted credential has expired: convert again")
    return StatusDecision(
        StatusColour(holder.carried_colour or "yellow"),
        StatusBasis(holder.carried_basis or "admin"),
        holder.carried_basis_time,
        holder.carried_until,
        StatusRule.OVERRIDE,
    )


def source_of(holder: Holder) -> SourceRef | None:
    """The `src` claim of a converted holder's credentials (None for a resident's)."""
    if holder.resident_id is not None or holder.source_region is None:
        return None
    if holder.source_status_index is None:
        # Converted before lineage was recorded: nothing to name, so nothing to issue.
        raise ConversionSourceRevokedError("this conversion predates source lineage: convert again")
    return SourceRef(holder.source_region, holder.source_status_index)


def issue_credential(
    ctx: IssuerContext,
    session: Session,
    holder: Holder,
    now: int,
    decision: StatusDecision | None = None,
) -> Issued:
    """Sign a fresh credential for the holder and queue its anchor (same transaction)."""
    return issue_many(ctx, session, [(holder, decision)], now)[0]


def issue_first_credential(
    ctx: IssuerContext, session: Session, holder: Holder, now: int
) -> Issued:
    """The first credential of a holder created in this same transaction (enrolment or
    conversion: no other transaction can see the holder yet, so no credential of its
    can precede this one). Counted under the holder's channel in the hourly counts
    (issuer.activity), in the same transaction: issuer.metrics reads a refresh as an
    anchored credential that is not a first one."""
    issued = issue_credential(ctx, session, holder, now)
    activity.note(session, activity.first_kind(holder.via), now)
    return issued


def issue_many(
    ctx: IssuerContext,
    session: Session,
    holders: Sequence[tuple[Holder, StatusDecision | None]],
    now: int,
    key: SigningKeyChoice | None = None,
) -> list[Issued]:
    """Issue one credential per (holder, decision) in the caller's transaction: one key
    lookup, one counter update and one insert per table for the whole group, so a group
    commit pays the durable write (fsync) once. Every credential row and its outbox row
    are in the same transaction: the caller hands credentials out only after it commits.
    The rows go in as Core inserts (credentials as one executemany, outbox rows as one
    multi-row INSERT ... RETURNING id): the ORM unit of work cost about as much per
    credential as the signature."""
    if not holders:
        return []
    # `key`, when given: the key active at `now`, read by the caller (group_state).
    key = signing_key_for(session, now, key)
    private_key = ctx.keys.signing_key(key.kid)
    alg = SigningAlg(key.alg)
    indices = next_status_indices(session, len(holders))
    plan = shard_plan(ctx)  # read once per batch
    issued: list[IssuedCredential] = []
    boxes: list[dict[str, Any]] = []
    decided: dict[int, StatusDecision] = {}  # one status decision per holder per group
    for (holder, given), index in zip(holders, indices, strict=True):
        decision = given or decided.get(holder.id) or holder_status(session, holder, now)
        decided[holder.id] = decision
        expires = min(now + ctx.config.credential_validity_s, key.not_after)
        if decision.valid_until is not None:
            expires = min(expires, decision.valid_until)
        check_expiry_fits(plan, now, expires)  # before signing: never mis-filed
        if holder.resident_id is not None:
            resident = session.get_one(Resident, holder.resident_id)
            masked, hint = mask_name(resident.name), document_hint(resident.document_number)
        else:
            masked, hint = holder.carried_name or "*", holder.carried_hint or ""
        claims = HealthClaims(
            region=ctx.region,
            kid=key.kid,
            status_index=index,
            issued_at=now,
            not_before=now,
            expires_at=expires,
            colour=decision.colour,
            masked_name=masked,
            document_hint=hint,
            holder_key=holder.device_key,
            source=source_of(holder),
        )
        jws = sign_credential(claims, private_key, alg)
        digest = credential_digest(jws)
        issued.append(
            IssuedCredential(
                credential_id=digest[:16].hex(),
                status_index=index,
                holder_pk=holder.id,
                kid=key.kid,
                colour=decision.colour.value,
                basis=decision.basis.value,
                rule=decision.rule.value,
                issued_at=now,
                expires_at=expires,
                digest=digest,
                jws=jws,
            )
        )
        entry = log_entries.credential_anchored(ctx.region, digest, index, key.kid, expires)
        boxes.append(
            {
                "kind": "credential_anchored",
                "ref": str(index),
                "entry": entry,
                "created_at": now,
                "attempts": 0,
                "next_attempt_at": 0.0,
                "shard": shard_of_expiry(ctx, expires, plan),  # the log shard of its expiry
            }
        )
    conn = session.connection()
    conn.execute(_INSERT_CREDENTIALS, [_credential_values(c) for c in issued])
    box_ids = conn.execute(_INSERT_OUTBOX, boxes).scalars().all()
    activity.note(session, "credential_anchored", now, len(boxes))
    return [Issued(c, int(i), True) for c, i in zip(issued, box_ids, strict=True)]


def _credential_values(c: IssuedCredential) -> dict[str, Any]:
    return {
        "credential_id": c.credential_id,
        "status_index": c.status_index,
        "holder_pk": c.holder_pk,
        "kid": c.kid,
        "colour": c.colour,
        "basis": c.basis,
        "rule": c.rule,
        "issued_at": c.issued_at,
        "expires_at": c.expires_at,
        "digest": c.digest,
        "jws": c.jws,
        "state": c.state,
    }


def current_credential(ctx: IssuerContext, session: Session, holder: Holder, now: int) -> Issued:
    """The holder's current credential, or a fresh one when the status changed or the
    current one is within `refresh_before_s` of its expiry."""
    if holder.resident_id is not None:
        lock_resident(session, holder.resident_id)  # see lock_residents
    decision = holder_status(session, holder, now)
    same = reusable_credential(ctx, session, holder, now, decision)
    if same is not None:
        return same
    return issue_credential(ctx, session, holder, now, decision)


def latest_active(session: Session, holder: Holder) -> IssuedCredential | None:
    """The holder's latest active credential, with the state of its signing key."""
    found = session.execute(_LATEST_ACTIVE, {"holder": holder.id}).first()
    return None if found is None else IssuedCredential.of(found[0], found[1])


def fits_time(ctx: IssuerContext, row: IssuedCredential, now: int) -> bool:
    """Issued already, not within `refresh_before_s` of its expiry, in the current
    credential format (a credential of an older format, which disclosed the status
    basis, is replaced at the holder's next fetch instead of being handed out again),
    and not signed by a key since revoked for compromise: stations refuse such a
    credential (`key_compromised`), so the holder's next fetch gets one signed by the
    active key instead of the refused one until the routine refresh, hours later."""
    return (
        row.expires_at - now > ctx.config.refresh_before_s
        and row.issued_at <= now
        and not row.key_compromised
        and is_current_format(row.jws)
    )


def reused(session: Session, row: IssuedCredential) -> Issued:
    box = session.scalars(_ANCHOR_ROW, {"ref": str(row.status_index)}).first()
    return Issued(row, int(box or 0), False)


def reusable_from(
    ctx: IssuerContext,
    latest: IssuedCredential | None,
    outbox_id: int | None,
    decision: StatusDecision,
    now: int,
) -> Issued | None:
    """`latest` (with its outbox row id), if it still matches `decision` and is not near
    its expiry, else None (a re-issue is due)."""
    if (
        latest is not None
        and latest.colour == decision.colour.value
        and latest.basis == decision.basis.value
        and fits_time(ctx, latest, now)
    ):
        return Issued(latest, int(outbox_id or 0), False)
    return None


def reusable_credential(
    ctx: IssuerContext,
    session: Session,
    holder: Holder,
    now: int,
    decision: StatusDecision,
    latest: IssuedCredential | Literal[False] | None = False,
) -> Issued | None:
    """The holder's active credential if it still matches `decision` and is not near
    its expiry (then no re-issue is due), else None. `latest`, when given (None: the
    holder has none), is the holder's latest active credential already read."""
    row = latest_active(session, holder) if latest is False else latest
    if row is None:
        return None
    if (
        row.colour == decision.colour.value
        and row.basis == decision.basis.value
        and fits_time(ctx, row, now)
    ):
        return reused(session, row)
    return None


def revoke_credential_row(
    ctx: IssuerContext, session: Session, row: CredentialRow, reason: str, now: int
) -> OutboxRow:
    if row.state == "revoked":
        raise ConflictError(f"credential {row.status_index} is already revoked")
    row.state = "revoked"
    row.revoked_at = now
    row.revoke_reason = reason
    # The reason stays in this row (and the caller's audit record), not on the log.
    entry = log_entries.credential_revoked(ctx.region, row.status_index, now)
    return add_outbox(session, "credential_revoked", str(row.status_index), entry, now,
                      shard_of_expiry(ctx, row.expires_at))  # fmt: skip


def reinstate_credential_row(
    ctx: IssuerContext, session: Session, row: CredentialRow, now: int
) -> OutboxRow:
    if row.state != "revoked":
        raise ConflictError(f"credential {row.status_index} is not revoked")
    row.state = "active"
    row.revoked_at = None
    row.revoke_reason = None
    entry = log_entries.credential_reinstated(ctx.region, row.status_index, now)
    return add_outbox(session, "credential_reinstated", str(row.status_index), entry, now,
                      shard_of_expiry(ctx, row.expires_at))  # fmt: skip


def outstanding_credentials(session: Session, resident_id: int, now: int) -> list[CredentialRow]:
    return list(
        session.scalars(
            select(CredentialRow)
            .join(Holder, Holder.id == CredentialRow.holder_pk)
            .where(
                Holder.resident_id == resident_id,
                CredentialRow.state == "active",
                CredentialRow.expires_at > now,
            )
        ).all()
    )


def revoke_on_status_change(
    ctx: IssuerContext, session: Session, resident_id: int, before: StatusDecision, now: int
) -> list[OutboxRow]:
    """If the resident's status differs from `before`, revoke every outstanding
    credential on the log so the wallet's next fetch gets a fresh one."""
    after = resident_status(session, resident_id, now)
    if (after.colour, after.basis) == (before.colour, before.basis):
        return []
    return [
        revoke_credential_row(ctx, session, row, REVOKE_REASON_STATUS_CHANGE, now)
        for row in outstanding_credentials(session, resident_id, now)
    ]
