"""Admin operations shared by the console, the admin JSON API and the admin CLI.

Each call: (1) `issuer.admin.accounts.authorize` - the admin's region is this issuer's, the
target's region is the admin's, one of the admin's roles grants the operation;
(2) the issuer's service layer (`issuer.admin.services.AdminService`), which checks region
and role again with its own Actor and writes the change's one row on the hash-chained
admin audit log (issuer.audit) in the change's own transaction; (3) here, one row for
what the service layer never sees: a refused or failed attempt, and the actions that
are this layer's own (bulk preview and confirmation, audit export). So every action
lands on the chained log exactly once. Nothing here renders HTML or JSON.

Also here, on top of the issuer's models, what the service layer does not offer:
credential detail with masked identity and ledger history, bulk-revocation jobs with
progress, the key list. Entry states and the ledger page come from the service layer's
one ledger view (`issuer.ledger_state.ConsortiumCheckpoints` through
`AdminService.entry_status`): verified checkpoint, witness cosignatures counted
against the consortium policy, cosigners named.
"""

from __future__ import annotations

import csv
import io
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from sqlalchemy import select

from common.observability import SecurityEvent, security_event
from credential.claims import StatusColour
from credential.issue import read_claims_unverified
from issuer import audit, audit_csv, keymgmt
from issuer.admin.accounts import AdminPrincipal, Permission, authorize
from issuer.admin.models import AdminAccount, BulkJob
from issuer.admin.overview import Alarms, HourlyActivity, RegionFreshness
from issuer.admin.services import (
    REVOCATION_REASONS,
    Actor,
    AdminService,
    EntryState,
    EntryStatus,
    PendingEntry,
)
from issuer.anchor import QuarantinedRow
from issuer.anchor import quarantined as quarantined_rows
from issuer.audit import AuditEvent, Channel, Outcome
from issuer.context import IssuerContext
from issuer.errors import BadRequestError, IssuerError, NotFoundError, PermissionDeniedError
from issuer.ledger_state import ConsortiumCheckpoints, RegionLedger
from issuer.models import AdminAuditRecord, CredentialRow, OutboxRow, SigningKeyRow

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BULK_ROWS = 100_000  # status indices per bulk file
MAX_BULK_BYTES = 4 * 1024 * 1024  # bytes of an uploaded CSV (100,000 indices < 2 MiB)
MAX_BULK_REQUEST_BYTES = MAX_BULK_BYTES + 64 * 1024  # the upload plus form fields
BULK_READ_BYTES = 64 * 1024  # bytes read from an upload at a time
MAX_INVALID_LINES = 1000  # invalid lines kept for the report (they are still counted out)
BULK_BATCH = 1000  # revocations per transaction in a bulk job (progress granularity)
PREVIEW_ROWS = 20
MAX_NOTE_CHARS = 500
CREDENTIAL_KINDS = ("credential_anchored", "credential_revoked", "credential_reinstated")


@dataclass(frozen=True)
class Who:
    """The principal plus where the request came from, for the audit log."""

    principal: AdminPrincipal
    address: str
    channel: Channel


@dataclass(frozen=True)
class HistoryItem:
    kind: str
    outbox_id: int
    log_index: int | None
    at: int
    state: EntryState
    witnesses: tuple[str, ...] = ()  # members whose witnesses cosigned the checkpoint


@dataclass(frozen=True)
class CredentialDetail:
    region: str
    credential_id: str
    status_index: int
    masked_name: str
    document_hint: str
    kid: str
    colour: str
    basis: str
    issued_at: int
    expires_at: int
    state: str
    revoke_reason: str | None
    history: tuple[HistoryItem, ...]


@dataclass(frozen=True)
class BulkPreview:
    job_id: str
    total: int
    sample: tuple[int, ...]
    invalid_lines: tuple[str, ...]
    unknown: int
    already_revoked: int


@dataclass(frozen=True)
class BulkStatus:
    job_id: str
    state: str
    total: int
    done: int
    failed: int
    message: str

    @property
    def percent(self) -> int:
        return 100 if self.total == 0 else int(100 * self.done / self.total)


class _CappedReader(io.RawIOBase):
    """A binary stream that refuses to yield more than `limit` bytes in all."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream, self.left = stream, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        chunk = self.stream.read(min(len(buf), self.left + 1))
        if len(chunk) > self.left:
            raise BadRequestError(f"expected a CSV of at most {MAX_BULK_BYTES} bytes")
        self.left -= len(chunk)
        buf[: len(chunk)] = chunk
        return len(chunk)


def parse_bulk_csv(data: bytes | IO[bytes]) -> tuple[list[int], list[str]]:
    """Status indices from a CSV: a `status_index` column if there is a header, else
    the first column. Returns (unique indices in file order, invalid lines).

    `data` may be a stream (the request body, an uploaded file): it is read and
    parsed row by row, never held whole, and refused past MAX_BULK_BYTES."""
    stream: IO[bytes] = io.BytesIO(data) if isinstance(data, bytes) else data
    text = io.TextIOWrapper(
        io.BufferedReader(_CappedReader(stream, MAX_BULK_BYTES), BULK_READ_BYTES),
        encoding="utf-8-sig",
        newline="",
    )
    seen: dict[int, None] = {}
    invalid: list[str] = []
    col: int | None = None
    try:
        for n, row in enumerate(csv.reader(text), 1):
            if col is None and row and row[0].strip():
                col = 0
                if not row[0].strip().isdigit():
                    header = [h.strip().lower() for h in row]
                    if "status_index" not in header:
                        raise BadRequestError("expected a status_index column (or bare numbers)")
                    col = header.index("status_index")
                    continue
            if not row or not any(c.strip() for c in row):
                continue
            cell = row[col or 0].strip() if (col or 0) < len(row) else ""
            if not cell.isdigit() or len(cell) > 18:
                if len(invalid) < MAX_INVALID_LINES:
                    invalid.append(f"line {n}: {cell[:20]!r} is not a status index")
                continue
            seen[int(cell)] = None
            if len(seen) > MAX_BULK_ROWS:
                raise BadRequestError(f"expected at most {MAX_BULK_ROWS} status indices")
    except UnicodeDecodeError as e:
        raise BadRequestError("expected a UTF-8 CSV file") from e
    except csv.Error as e:
        raise BadRequestError(f"malformed CSV: {e}") from e
    if not seen:
        raise BadRequestError("the file holds no status index")
    return list(seen), invalid


def check_reason(reason: str, note: str) -> None:
    if reason not in REVOCATION_REASONS:
        raise BadRequestError(f"reason must be one of {', '.join(sorted(REVOCATION_REASONS))}")
    if len(note) > MAX_NOTE_CHARS:
        raise BadRequestError(f"note longer than {MAX_NOTE_CHARS} characters")


@dataclass(frozen=True)
class Overview:
    """What the console's landing page shows (issuer.admin.overview gathers each part)."""

    now: int
    activity: HourlyActivity
    outbox_pending: int
    outbox_oldest_s: int | None
    regions: list[RegionFreshness]
    alarms: Alarms


class AdminOps:
    def __init__(self, ctx: IssuerContext, ledger: ConsortiumCheckpoints | None) -> None:
        self.ctx = ctx
        self.ledger = ledger  # None: no consortium file, cosignatures cannot be checked
        self.service = AdminService(ctx)
        self.on_change: Callable[[], None] = lambda: None  # wakes the anchor worker

    # the three steps ---------------------------------------------------------------------
    def _run(
        self,
        who: Who,
        permission: Permission,
        target_region: str | None,
        action: str,
        target: str,
        detail: str,
        fn: Callable[[], T],
        audited_by_service: bool = True,
    ) -> T:
        """`fn` either goes through AdminService (which audits a success inside its
        transaction) or, with `audited_by_service=False`, is audited here on success."""
        p = who.principal
        try:
            authorize(p, permission, self.ctx.region, target_region)
            result = fn()
        except IssuerError as e:
            outcome = Outcome.DENIED if isinstance(e, PermissionDeniedError) else Outcome.FAILED
            self._record(who, action, target, f"{detail} -> {e.code}: {e.message}", outcome, ())
            raise
        if audited_by_service:
            self._anchor_audit()
        else:
            self._record(who, action, target, detail, Outcome.OK, ())
        self.on_change()
        return result

    def _record(
        self,
        who: Who,
        action: str,
        target: str,
        detail: str,
        outcome: Outcome,
        ids: tuple[int, ...],
    ) -> None:
        p = who.principal
        if outcome is Outcome.DENIED:
            # Logged once, here, next to the audit record; the free-text detail (an
            # admin's typed reason) stays in the audit log only.
            security_event(
                log, SecurityEvent.PERMISSION_REFUSED, admin=p.username, region=p.region,
                action=action, target=target, channel=str(who.channel),
            )  # fmt: skip
        audit.record(
            self.ctx.sessions,
            AuditEvent(
                p.username, p.region, action, target, detail, who.address, who.channel, outcome, ids
            ),
            self.ctx.now(),
        )
        self._anchor_audit()

    def _anchor_audit(self) -> None:
        # The audit log's head goes on the region's log at most every few minutes.
        audit.anchor_digest(
            self.ctx.sessions, self.ctx.region, self.ctx.now(), audit.DEFAULT_ANCHOR_INTERVAL_S
        )

    def _actor(self, who: Who) -> Actor:
        p = who.principal
        return Actor(p.username, p.region, p.roles, who.address, who.channel)

    def _read(self, who: Who, permission: Permission, region: str | None = None) -> None:
        # Reads are not audited one by one (the log would drown in page views), but a
        # refused read is.
        try:
            authorize(who.principal, permission, self.ctx.region, region)
        except PermissionDeniedError as e:
            self._record(
                who, f"read:{permission.value}", region or "", e.message, Outcome.DENIED, ()
            )
            raise

    # credentials ------------------------------------------------------------------------------
    def find(self, who: Who, region: str, by: str, value: str) -> list[CredentialDetail]:
        self._read(who, Permission.VIEW_CREDENTIALS, region)
        value = value.strip()
        actor = self._actor(who)
        if by == "status_index":
            if not value.isdigit() or len(value) > 18:
                raise BadRequestError("a status index is a non-negative integer")
            found = self.service.find_credentials(actor, status_index=int(value), region=region)
        elif by == "credential_id":
            found = self.service.find_credentials(actor, credential_id=value, region=region)
        elif by == "document_number":
            found = self.service.find_credentials(actor, document_number=value, region=region)
        else:
            raise BadRequestError("search by status_index, credential_id or document_number")
        return [self.detail(who, region, f.status_index) for f in found]

    def detail(self, who: Who, region: str, status_index: int) -> CredentialDetail:
        self._read(who, Permission.VIEW_CREDENTIALS, region)
        with self.ctx.sessions() as s:
            row = s.scalars(
                select(CredentialRow).where(CredentialRow.status_index == status_index)
            ).first()
            if row is None:
                raise NotFoundError(f"no credential of {region} with status index {status_index}")
            boxes = s.scalars(
                select(OutboxRow)
                .where(OutboxRow.ref == str(status_index), OutboxRow.kind.in_(CREDENTIAL_KINDS))
                .order_by(OutboxRow.id)
            ).all()
        claims = read_claims_unverified(row.jws)
        if claims.region != region:
            raise PermissionDeniedError(f"credential belongs to {claims.region}, not {region}")
        reader = self._actor(who)
        history = []
        for b in boxes:
            st = self.service.entry_status(reader, b.id, self.ledger)
            history.append(
                HistoryItem(b.kind, b.id, b.log_index, b.created_at, st.state, st.witnesses)
            )
        return CredentialDetail(
            region,
            row.credential_id,
            row.status_index,
            claims.masked_name,
            claims.document_hint,
            row.kid,
            row.colour,
            row.basis,
            row.issued_at,
            row.expires_at,
            row.state,
            row.revoke_reason,
            tuple(history),
        )

    def revoke(self, who: Who, region: str, idx: int, reason: str, note: str) -> PendingEntry:
        def go() -> PendingEntry:
            check_reason(reason, note)
            return self.service.revoke(self._actor(who), idx, reason, note, region=region)

        return self._run(
            who,
            Permission.REVOKE,
            region,
            "revoke",
            f"{region}:{idx}",
            f"{reason}: {note}",
            go,
        )

    def reinstate(self, who: Who, region: str, idx: int, reason: str, note: str) -> PendingEntry:
        def go() -> PendingEntry:
            if not reason.strip() or len(reason) > 32 or len(note) > MAX_NOTE_CHARS:
                raise BadRequestError("a reason code (1-32 characters) is required")
            return self.service.reinstate(self._actor(who), idx, reason, note, region=region)

        return self._run(
            who,
            Permission.REINSTATE,
            region,
            "reinstate",
            f"{region}:{idx}",
            f"{reason}: {note}",
            go,
        )

    def override(
        self,
        who: Who,
        region: str,
        document_number: str,
        colour: StatusColour | None,
        reason: str,
        until: int | None,
    ) -> list[PendingEntry]:
        def go() -> list[PendingEntry]:
            return self.service.override_status(
                self._actor(who),
                document_number.strip(),
                colour,
                reason,
                until,
                region=region,
            )

        # The audit target names no document number: only that an override happened.
        return self._run(
            who,
            Permission.OVERRIDE_STATUS,
            region,
            "status_override",
            f"{region}:resident",
            f"{colour or 'lifted'}: {reason}",
            go,
        )

    # bulk revocation ----------------------------------------------------------------------------
    def bulk_preview(
        self, who: Who, region: str, data: bytes | IO[bytes], reason: str, note: str
    ) -> BulkPreview:
        def go() -> BulkPreview:
            check_reason(reason, note)
            indices, invalid = parse_bulk_csv(data)
            known: dict[int, str] = {}
            with self.ctx.sessions() as s:
                for start in range(0, len(indices), 900):
                    chunk = indices[start : start + 900]
                    for idx, state in s.execute(
                        select(CredentialRow.status_index, CredentialRow.state).where(
                            CredentialRow.status_index.in_(chunk)
                        )
                    ):
                        known[int(idx)] = state
            job_id = secrets.token_urlsafe(12)
            with self.ctx.sessions.begin() as s:
                account = s.scalars(
                    select(AdminAccount).where(AdminAccount.username == who.principal.username)
                ).one()
                s.add(
                    BulkJob(
                        job_id=job_id,
                        account_id=account.id,
                        region=region,
                        reason=reason,
                        note=note,
                        indices=",".join(map(str, indices)),
                        total=len(indices),
                        done=0,
                        failed=0,
                        state="preview",
                        message="",
                        created_at=self.ctx.now(),
                    )
                )
            return BulkPreview(
                job_id,
                len(indices),
                tuple(indices[:PREVIEW_ROWS]),
                tuple(invalid[:PREVIEW_ROWS]),
                sum(1 for i in indices if i not in known),
                sum(1 for i in indices if known.get(i) == "revoked"),
            )

        return self._run(
            who,
            Permission.BULK_REVOKE,
            region,
            "bulk_preview",
            region,
            f"{reason}: {note}",
            go,
            audited_by_service=False,
        )

    def _job(self, who: Who, job_id: str) -> BulkJob:
        with self.ctx.sessions() as s:
            job = s.scalars(select(BulkJob).where(BulkJob.job_id == job_id)).first()
            if job is None:
                raise NotFoundError("no such bulk job")
            owner = s.get_one(AdminAccount, job.account_id)
        if job.region != who.principal.region or owner.region != who.principal.region:
            raise PermissionDeniedError(f"that job belongs to region {job.region}")
        return job

    def bulk_confirm(self, who: Who, job_id: str, wait: bool = False) -> BulkStatus:
        def go() -> BulkJob:
            job = self._job(who, job_id)
            if job.state != "preview":
                raise BadRequestError(f"the job is {job.state}, not awaiting confirmation")
            with self.ctx.sessions.begin() as s:
                s.get_one(BulkJob, job.id).state = "running"
            return job

        job = self._run(
            who,
            Permission.BULK_REVOKE,
            None,
            "bulk_confirm",
            f"job:{job_id}",
            "confirmed",
            go,
            audited_by_service=False,
        )
        t = threading.Thread(target=self._bulk_worker, args=(who, job), daemon=True)
        t.start()
        if wait:
            t.join()
        return self.bulk_status(who, job_id)

    def _bulk_worker(self, who: Who, job: BulkJob) -> None:
        indices = [int(x) for x in job.indices.split(",") if x]

        def progress(done: int, total: int) -> None:
            with self.ctx.sessions.begin() as s:
                s.get_one(BulkJob, job.id).done = done
            self.on_change()

        try:
            out = self.service.bulk_revoke(
                self._actor(who),
                indices,
                job.reason,
                job.note,
                progress=progress,
                region=job.region,
                batch=BULK_BATCH,
                job=job.job_id,
            )
            state, failed = "finished", 0
            msg = f"{len(out)} revoked, {len(indices) - len(out)} skipped (unknown or already)"
        except Exception as e:  # the job records the failure; nothing escapes the thread
            log.warning("bulk job failed: %s", type(e).__name__)
            out, state, failed = [], "failed", len(indices)
            msg = f"{type(e).__name__}: {e}"[:1000]
        with self.ctx.sessions.begin() as s:
            row = s.get_one(BulkJob, job.id)
            row.state, row.failed, row.message = state, failed, msg
            row.finished_at = self.ctx.now()
            if state == "finished":
                row.done = row.total
        if state == "failed":
            # The batches that committed carry their own audit rows (AdminService); the
            # failure itself is recorded here, once.
            target = f"{job.region}:job:{job.job_id}"
            self._record(who, "bulk_revoke", target, msg, Outcome.FAILED, ())
        else:
            self._anchor_audit()
        self.on_change()

    def bulk_status(self, who: Who, job_id: str) -> BulkStatus:
        self._read(who, Permission.VIEW_CREDENTIALS)
        job = self._job(who, job_id)
        return BulkStatus(job.job_id, job.state, job.total, job.done, job.failed, job.message)

    # keys ---------------------------------------------------------------------------------------
    def keys(self, who: Who) -> list[SigningKeyRow]:
        self._read(who, Permission.VIEW_KEYS, self.ctx.region)
        with self.ctx.sessions() as s:
            return keymgmt.list_keys(s)

    def rotate_key(self, who: Who, region: str) -> list[PendingEntry]:
        return self._run(
            who,
            Permission.ROTATE_KEY,
            region,
            "rotate_key",
            region,
            "",
            lambda: self.service.rotate_key(self._actor(who), region=region),
        )

    def revoke_key(
        self, who: Who, region: str, kid: str, compromised_at: int | None, reason: str
    ) -> list[PendingEntry]:
        detail = f"compromised_at={compromised_at}: {reason}" if compromised_at else reason

        def go() -> list[PendingEntry]:
            if not reason.strip() or len(reason) > MAX_NOTE_CHARS:
                raise BadRequestError(f"a reason of 1-{MAX_NOTE_CHARS} characters is required")
            return self.service.revoke_key(
                self._actor(who), kid, compromised_at, reason, region=region
            )

        return self._run(
            who,
            Permission.REVOKE_KEY,
            region,
            "revoke_key",
            f"{region}:{kid}",
            detail,
            go,
        )

    # ledger --------------------------------------------------------------------------------------
    def entry(self, who: Who, outbox_id: int) -> EntryStatus:
        """State, log index and cosigners of one queued log entry."""
        self._read(who, Permission.VIEW_CREDENTIALS)
        return self.service.entry_status(self._actor(who), outbox_id, self.ledger)

    def entry_state(self, who: Who, outbox_id: int) -> EntryState:
        return self.entry(who, outbox_id).state

    def ledger_regions(self, who: Who) -> list[RegionLedger]:
        self._read(who, Permission.VIEW_LEDGER)
        if self.ledger is None:
            why = "no consortium file configured: cosignatures cannot be checked"
            return [RegionLedger(self.ctx.region, "", self.ctx.config.ledger_url or "", error=why)]
        return self.ledger.regions()

    def overview(self, who: Who) -> Overview:
        """The landing page's figures: activity per hour, outbox, freshness, alarms."""
        from issuer.admin.overview import fetch_alarms, freshness, hourly_activity

        self._read(who, Permission.VIEW_LEDGER)
        now = self.ctx.now()
        pending, oldest = self.outbox_lag(who)
        regions = freshness(self.ledger_regions(who), self.ctx.region, now)
        return Overview(
            now,
            hourly_activity(self.ctx, now),
            pending,
            oldest,
            regions,
            fetch_alarms(self.ctx.config.ledger_url),
        )

    def outbox_lag(self, who: Who) -> tuple[int, int | None]:
        """(entries waiting for the node, age in seconds of the oldest one)."""
        self._read(who, Permission.VIEW_LEDGER)
        with self.ctx.sessions() as s:
            pending = s.scalars(
                select(OutboxRow.created_at).where(
                    OutboxRow.log_index.is_(None), OutboxRow.quarantined_at.is_(None)
                )
            ).all()
        oldest = min(pending) if pending else None
        return len(pending), None if oldest is None else max(0, self.ctx.now() - oldest)

    def quarantined(self, who: Who) -> list[QuarantinedRow]:
        """Outbox rows the ledger refused (issuer.anchor), newest first."""
        self._read(who, Permission.VIEW_LEDGER)
        return quarantined_rows(self.ctx)

    # audit ---------------------------------------------------------------------------------------
    def audit_rows(self, who: Who, limit: int, offset: int) -> list[AdminAuditRecord]:
        self._read(who, Permission.VIEW_AUDIT)
        with self.ctx.sessions() as s:
            return audit.rows(s, limit, offset)

    def audit_export(self, who: Who) -> str:
        def go() -> str:
            with self.ctx.sessions() as s:
                audit.verify_all(s)
                return audit_csv.render(audit.rows(s))

        return self._run(
            who, Permission.EXPORT_AUDIT, None, "audit_export", "", "", go, audited_by_service=False
        )

    def audit_verify(self, who: Who) -> tuple[int, bytes]:
        self._read(who, Permission.VIEW_AUDIT)
        with self.ctx.sessions() as s:
            audit.verify_all(s)
            return audit.head(s)
