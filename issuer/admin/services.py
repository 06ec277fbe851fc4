"""The administrative service layer: what the admin console, its JSON API and the
admin commands call (through `issuer.admin.ops`).

Every operation takes an `Actor` (which admin, which region, which role, from which
address and channel) and checks it first: a region's admin can never touch another
region's credentials or keys, and read-only roles can only look. Every change writes
exactly one row on the hash-chained admin audit log (`issuer.audit`) in the same
database transaction as the change itself, so a crash can neither leave a change
unaudited nor an audit row for a change that did not happen. Each change returns the
pending log entries (`PendingEntry`), whose anchoring and cosigning can be asked about
later (`entry_status`). No HTTP here; the ledger is reached through small callables.
Refused attempts are audited by the caller (`issuer.admin.ops`), which sees them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from credential.claims import StatusColour
from issuer import audit, keymgmt
from issuer.admin.accounts import AdminPrincipal, Permission, Role, authorize
from issuer.audit import AuditEvent, Channel, Outcome
from issuer.context import IssuerContext
from issuer.errors import BadRequestError, IssuerError, NotFoundError
from issuer.issuance import (
    lock_resident,
    reinstate_credential_row,
    resident_status,
    revoke_credential_row,
    revoke_on_status_change,
)
from issuer.ledger_state import CheckpointView
from issuer.models import CredentialRow, Holder, OutboxRow, Resident, StatusOverrideRow
from ledger.log.entries import RevocationReason

T = TypeVar("T")
MAX_REASON_CHARS = 500
# What an admin gives as the reason of a revocation (kept in the credential row and the
# audit log). `unspecified` is what the public log says for every revocation, never a
# reason an admin chooses; `source_revoked` is the issuer's own (issuer.lineage).
REVOCATION_REASONS = frozenset(r.value for r in RevocationReason) - {
    RevocationReason.UNSPECIFIED.value,
    RevocationReason.SOURCE_REVOKED.value,
}


class EntryState(StrEnum):
    PENDING = "pending"  # in the outbox, not yet accepted by the node
    SEQUENCED = "sequenced"  # the node gave it a log index
    ANCHORED = "anchored"  # a signed checkpoint covers the index
    COSIGNED = "cosigned"  # ...and that checkpoint satisfies the witness quorum


@dataclass(frozen=True)
class Actor:
    """An admin acting as themselves: the name is their account's username, the roles
    their account's (issuer.admin.accounts: the one permission model)."""

    name: str
    region: str
    roles: frozenset[Role]
    address: str = "unknown"  # client address (or cli@host), for the audit log
    channel: Channel = Channel.CLI

    @property
    def principal(self) -> AdminPrincipal:
        return AdminPrincipal(self.name, self.region, self.roles)


@dataclass(frozen=True)
class PendingEntry:
    outbox_id: int
    kind: str
    ref: str
    log_index: int | None


@dataclass(frozen=True)
class CredentialInfo:
    credential_id: str
    status_index: int
    holder_id: str
    kid: str
    colour: str
    basis: str
    issued_at: int
    expires_at: int
    state: str
    revoke_reason: str | None


@dataclass(frozen=True)
class EntryStatus:
    """One queued log entry against the latest checkpoint of the region's log."""

    outbox_id: int
    state: EntryState
    log_index: int | None
    checkpoint_size: int | None = None
    witnesses: tuple[str, ...] = ()  # who cosigned the checkpoint covering the entry
    quorum: str = ""
    ledger_error: str | None = None  # why the checkpoint could not be read, if so


class AdminService:
    def __init__(self, ctx: IssuerContext) -> None:
        self.ctx = ctx

    # permission checks ------------------------------------------------------------------
    def _check(self, actor: Actor, region: str, permission: Permission) -> None:
        # The same rule as every other admin path: issuer.admin.accounts.authorize.
        authorize(actor.principal, permission, self.ctx.region, region)

    def _audit(
        self,
        s: Session,
        actor: Actor,
        action: str,
        target: str,
        detail: str,
        outbox_ids: Iterable[int],
    ) -> None:
        """One chained audit row inside the caller's transaction."""
        event = AuditEvent(
            actor.name,
            actor.region,
            action,
            target,
            detail,
            actor.address,
            actor.channel,
            Outcome.OK,
            tuple(outbox_ids),
        )
        audit.append(s, event, self.ctx.now())

    def _transaction(self, fn: Callable[[Session], T]) -> T:
        """Run `fn` in one transaction; on PostgreSQL two concurrent admins may race for
        the next audit row number (its primary key), and the loser's whole transaction,
        change included, is rolled back and run again (SQLite's BEGIN IMMEDIATE
        serialises writers, so it never races)."""
        for attempt in range(audit.APPEND_RETRIES):
            try:
                with self.ctx.sessions.begin() as s:
                    return fn(s)
            except IntegrityError:
                if attempt == audit.APPEND_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _pending(box: OutboxRow) -> PendingEntry:
        return PendingEntry(box.id, box.kind, box.ref, box.log_index)

    # lookups ----------------------------------------------------------------------------
    def find_credentials(
        self,
        actor: Actor,
        *,
        status_index: int | None = None,
        credential_id: str | None = None,
        document_number: str | None = None,
        region: str | None = None,
    ) -> list[CredentialInfo]:
        self._check(actor, region or actor.region, Permission.VIEW_CREDENTIALS)
        q = select(CredentialRow, Holder.holder_id).join(
            Holder, Holder.id == CredentialRow.holder_pk
        )
        if status_index is not None:
            q = q.where(CredentialRow.status_index == status_index)
        elif credential_id is not None:
            q = q.where(CredentialRow.credential_id == credential_id)
        elif document_number is not None:
            q = q.join(Resident, Resident.id == Holder.resident_id).where(
                Resident.document_number == document_number
            )
        else:
            raise BadRequestError("give a status index, a credential id or a document number")
        with self.ctx.sessions() as s:
            return [
                CredentialInfo(
                    c.credential_id,
                    c.status_index,
                    hid,
                    c.kid,
                    c.colour,
                    c.basis,
                    c.issued_at,
                    c.expires_at,
                    c.state,
                    c.revoke_reason,
                )
                for c, hid in s.execute(q.order_by(CredentialRow.id)).all()
            ]

    def _credential(self, s: Session, status_index: int) -> CredentialRow:
        row = s.scalars(
            select(CredentialRow).where(CredentialRow.status_index == status_index)
        ).first()
        if row is None:
            raise NotFoundError(f"no credential with status index {status_index}")
        return row

    @staticmethod
    def _reason(code: str, note: str) -> str:
        if code not in REVOCATION_REASONS:
            raise BadRequestError(f"reason must be one of {sorted(REVOCATION_REASONS)}")
        if len(note) > MAX_REASON_CHARS:
            raise BadRequestError(f"note longer than {MAX_REASON_CHARS} characters")
        return code

    # credential changes --------------------------------------------------------------------
    def revoke(
        self,
        actor: Actor,
        status_index: int,
        reason: str,
        note: str = "",
        region: str | None = None,
    ) -> PendingEntry:
        target_region = region or actor.region
        self._check(actor, target_region, Permission.REVOKE)
        code = self._reason(reason, note)

        def go(s: Session) -> PendingEntry:
            row = self._credential(s, status_index)
            box = revoke_credential_row(self.ctx, s, row, code, self.ctx.now())
            target = f"{target_region}:{status_index}"
            self._audit(s, actor, "revoke", target, f"{code}: {note}", (box.id,))
            return self._pending(box)

        return self._transaction(go)

    def reinstate(
        self,
        actor: Actor,
        status_index: int,
        reason: str,
        note: str = "",
        region: str | None = None,
    ) -> PendingEntry:
        target_region = region or actor.region
        self._check(actor, target_region, Permission.REINSTATE)

        def go(s: Session) -> PendingEntry:
            row = self._credential(s, status_index)
            box = reinstate_credential_row(self.ctx, s, row, self.ctx.now())
            target = f"{target_region}:{status_index}"
            self._audit(s, actor, "reinstate", target, f"{reason}: {note}", (box.id,))
            return self._pending(box)

        return self._transaction(go)

    def bulk_revoke(
        self,
        actor: Actor,
        status_indices: Iterable[int],
        reason: str,
        note: str = "",
        progress: Callable[[int, int], None] | None = None,
        region: str | None = None,
        batch: int = 500,
        job: str = "",
    ) -> list[PendingEntry]:
        """Revoke many credentials, `batch` per transaction, each transaction with its
        one audit row (the batch's log entries); already-revoked or unknown indices are
        skipped (reported through the returned list's length)."""
        target_region = region or actor.region
        self._check(actor, target_region, Permission.BULK_REVOKE)
        code = self._reason(reason, note)
        indices = list(status_indices)
        target = f"{target_region}:job:{job}" if job else f"{target_region}:bulk"
        out: list[PendingEntry] = []
        for start in range(0, len(indices), batch):
            chunk = indices[start : start + batch]

            def go(s: Session, chunk: list[int] = chunk, start: int = start) -> list[PendingEntry]:
                done = []
                # One query per chunk, not per index: a 100,000-row job is mostly
                # lookups, and unknown indices should cost next to nothing.
                rows = {
                    r.status_index: r
                    for r in s.scalars(
                        select(CredentialRow).where(CredentialRow.status_index.in_(chunk))
                    )
                }
                for idx in chunk:
                    row = rows.get(idx)
                    if row is None or row.state == "revoked":
                        continue
                    done.append(revoke_credential_row(self.ctx, s, row, code, self.ctx.now()))
                end = start + len(chunk)
                detail = (
                    f"{code}: {note} (indices {start + 1}-{end} of {len(indices)}: "
                    f"{len(done)} revoked, {len(chunk) - len(done)} skipped)"
                )
                self._audit(s, actor, "bulk_revoke", target, detail, (b.id for b in done))
                return [self._pending(b) for b in done]

            out.extend(self._transaction(go))
            if progress:
                progress(min(start + batch, len(indices)), len(indices))
        return out

    def override_status(
        self,
        actor: Actor,
        document_number: str,
        colour: StatusColour | None,
        reason: str,
        until: int | None = None,
        region: str | None = None,
    ) -> list[PendingEntry]:
        """Set (or, with colour None, lift) an admin override; revokes what it outdates.
        The audit row names the resident by internal row id, never by document number."""
        target_region = region or actor.region
        self._check(actor, target_region, Permission.OVERRIDE_STATUS)
        if not reason.strip() or len(reason) > MAX_REASON_CHARS:
            raise BadRequestError(f"a reason of 1-{MAX_REASON_CHARS} characters is required")
        now = self.ctx.now()

        def go(s: Session) -> list[PendingEntry]:
            resident = s.scalars(
                select(Resident).where(Resident.document_number == document_number)
            ).first()
            if resident is None or resident.region != actor.region:
                raise NotFoundError(f"no resident of {actor.region} with that document number")
            lock_resident(s, resident.id)  # no fetch re-issues meanwhile (lock_residents)
            before = resident_status(s, resident.id, now)
            for old in s.scalars(
                select(StatusOverrideRow).where(
                    StatusOverrideRow.resident_id == resident.id, StatusOverrideRow.active.is_(True)
                )
            ):
                old.active = False
            if colour is not None:
                s.add(
                    StatusOverrideRow(
                        resident_id=resident.id,
                        colour=colour.value,
                        reason=reason,
                        actor=actor.name[:64],
                        at=now,
                        until=until,
                        active=True,
                    )
                )
                s.flush()
            boxes = revoke_on_status_change(self.ctx, s, resident.id, before, now)
            self._audit(
                s,
                actor,
                "status_override",
                f"{target_region}:resident:{resident.id}",
                f"{colour or 'lifted'}: {reason}",
                (b.id for b in boxes),
            )
            return [self._pending(b) for b in boxes]

        return self._transaction(go)

    # keys ------------------------------------------------------------------------------------
    def rotate_key(self, actor: Actor, region: str | None = None) -> list[PendingEntry]:
        target_region = region or actor.region
        self._check(actor, target_region, Permission.ROTATE_KEY)

        def audited(s: Session, change: keymgmt.KeyChange) -> None:
            target = f"{target_region}:{change.kid}"
            self._audit(s, actor, "rotate_key", target, "", change.outbox_ids)

        change = keymgmt.rotate_key(self.ctx, in_transaction=audited)
        return self._pending_of(change)

    def revoke_key(
        self,
        actor: Actor,
        kid: str,
        compromised_at: int | None,
        reason: str,
        region: str | None = None,
    ) -> list[PendingEntry]:
        target_region = region or actor.region
        self._check(actor, target_region, Permission.REVOKE_KEY)
        detail = f"compromised_at={compromised_at}: {reason}" if compromised_at else reason

        def audited(s: Session, change: keymgmt.KeyChange) -> None:
            target = f"{target_region}:{change.kid}"
            self._audit(s, actor, "revoke_key", target, detail, change.outbox_ids)

        change = keymgmt.revoke_key(self.ctx, kid, compromised_at, in_transaction=audited)
        return self._pending_of(change)

    def _pending_of(self, change: keymgmt.KeyChange) -> list[PendingEntry]:
        with self.ctx.sessions() as s:
            return [self._pending(s.get_one(OutboxRow, i)) for i in change.outbox_ids]

    # ledger state ------------------------------------------------------------------------------
    def entry_state(
        self, actor: Actor, outbox_id: int, checkpoint: Callable[[], CheckpointView] | None = None
    ) -> EntryState:
        """Pending, sequenced, anchored (checkpoint size > index) or cosigned (and the
        checkpoint satisfies the consortium's witness quorum)."""
        return self.entry_status(actor, outbox_id, checkpoint).state

    def entry_status(
        self, actor: Actor, outbox_id: int, checkpoint: Callable[[], CheckpointView] | None = None
    ) -> EntryStatus:
        """`entry_state` with the log index and the witnesses that cosigned. A ledger
        that cannot be read leaves a sequenced entry at SEQUENCED (never claims more)."""
        self._check(actor, actor.region, Permission.VIEW_LEDGER)
        with self.ctx.sessions() as s:
            box = s.get(OutboxRow, outbox_id)
            if box is None:
                raise NotFoundError(f"no outbox entry {outbox_id}")
        if box.log_index is None:
            return EntryStatus(outbox_id, EntryState.PENDING, None)
        if checkpoint is None:
            return EntryStatus(outbox_id, EntryState.SEQUENCED, box.log_index)
        # A sharded log: the view of the shard the row was anchored in (issuer.sharding).
        for_shard = getattr(checkpoint, "for_shard", None)
        if box.shard is not None and for_shard is not None:
            checkpoint = for_shard(box.shard)
            assert checkpoint is not None
        try:
            view = checkpoint()
        except IssuerError as e:
            return EntryStatus(
                outbox_id, EntryState.SEQUENCED, box.log_index, ledger_error=e.message
            )
        if view.size <= box.log_index:
            state = EntryState.SEQUENCED
        else:
            state = EntryState.COSIGNED if view.cosigned else EntryState.ANCHORED
        return EntryStatus(outbox_id, state, box.log_index, view.size, view.witnesses, view.quorum)
