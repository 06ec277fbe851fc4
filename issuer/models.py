"""SQLAlchemy 2 typed models of the issuer database.

Document numbers and names live only here (table `residents`); nothing else in the
system, neither the ledger nor logs nor credentials, holds them. Times are integer Unix
seconds. The schema is created by the Alembic migrations in issuer/migrations/, which a
test keeps in step with these models.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Resident(Base):
    __tablename__ = "residents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_number: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    region: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[int] = mapped_column(BigInteger)


class HealthRecordRow(Base):
    __tablename__ = "health_records"
    __table_args__ = (UniqueConstraint("resident_id", "kind", "at", "result"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    at: Mapped[int] = mapped_column(BigInteger)
    result: Mapped[str] = mapped_column(String(16), default="")
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[int] = mapped_column(BigInteger)


class StatusOverrideRow(Base):
    __tablename__ = "status_overrides"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    colour: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(500))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[int] = mapped_column(BigInteger)
    until: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Holder(Base):
    """A resident's enrolled device: the key every credential is bound to (RFC 7800)."""

    __tablename__ = "holders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder_id: Mapped[str] = mapped_column(String(64), unique=True)
    # A holder enrolled here belongs to a resident; one converted from another region's
    # credential has no resident row: it carries that credential's masked fields instead.
    resident_id: Mapped[int | None] = mapped_column(
        ForeignKey("residents.id"), index=True, nullable=True
    )
    device_key: Mapped[bytes] = mapped_column(LargeBinary)
    via: Mapped[str] = mapped_column(String(16))  # enrolment | conversion
    source_region: Mapped[str | None] = mapped_column(String(8), nullable=True)
    carried_name: Mapped[str | None] = mapped_column(String(32), nullable=True)
    carried_hint: Mapped[str | None] = mapped_column(String(16), nullable=True)
    carried_colour: Mapped[str | None] = mapped_column(String(8), nullable=True)
    carried_basis: Mapped[str | None] = mapped_column(String(16), nullable=True)
    carried_basis_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    carried_until: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # A converted holder's source credential (its region is `source_region`): named in
    # every credential issued to this holder (`src` claim), re-checked on every refresh
    # against the synced source log; set `source_revoked_at` once the source fell.
    source_status_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    source_revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_auth_ts: Mapped[int] = mapped_column(BigInteger, default=0)


class CredentialRow(Base):
    __tablename__ = "credentials"
    # A holder's latest active credential (every fetch reads it) in one index descent,
    # whatever the holder's history: a daily re-issue adds a row a day, and by
    # (holder_pk) alone the fetch read every one of them (migration 0810).
    __table_args__ = (Index("ix_credentials_holder_state_id", "holder_pk", "state", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    credential_id: Mapped[str] = mapped_column(String(64), unique=True)
    status_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    holder_pk: Mapped[int] = mapped_column(ForeignKey("holders.id"))
    kid: Mapped[str] = mapped_column(String(64))
    colour: Mapped[str] = mapped_column(String(8))
    basis: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(32))
    issued_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    jws: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)


class EnrolmentCode(Base):
    __tablename__ = "enrolment_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary)
    salt: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class RateEvent(Base):
    __tablename__ = "rate_events"
    __table_args__ = (Index("ix_rate_events_key_at", "key", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(96))  # hashed: never a raw document number
    at: Mapped[int] = mapped_column(BigInteger)


class OutboxRow(Base):
    """A log entry waiting to be anchored; written in the transaction that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "log_index", "id"),
        Index("ix_outbox_kind_ref", "kind", "ref"),  # a credential's anchor row, by index
        # Only the quarantined rows (rare): every scrape counts them (issuer.metrics).
        Index(
            "ix_outbox_quarantined",
            "quarantined_at",
            sqlite_where=text("quarantined_at IS NOT NULL"),
            postgresql_where=text("quarantined_at IS NOT NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(64))
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[int] = mapped_column(BigInteger)
    log_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, default=0.0)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Set when the ledger refused this very entry (a rule it breaks): the row is set
    # aside, named in the console and the status API, and no longer holds up the rest.
    quarantined_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The temporal shard of the region's log this entry goes to (issuer.sharding); None
    # when the log is not sharded or the entry is not about one credential.
    shard: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ActivityHourRow(Base):
    """Outbox rows of one kind written in one UTC hour, counted as they commit
    (issuer.activity): the console's hourly overview reads these, never the outbox.
    Several rows (`slot`) per hour and kind, summed by readers, so that concurrent
    commits rarely wait on one row lock."""

    __tablename__ = "activity_hourly"
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # Unix time of its start
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class SigningKeyRow(Base):
    __tablename__ = "signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(8))
    public_key_der: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16))  # active | retired | compromised
    not_before: Mapped[int] = mapped_column(BigInteger)
    not_after: Mapped[int] = mapped_column(BigInteger)
    retired_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    compromised_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class Counter(Base):
    """Monotonic sequences (the region's status index): incremented, never reused."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class SeenProof(Base):
    """Holder proofs already used for a conversion, kept until their window closes, so a
    presentation cannot be converted twice (by any worker process)."""

    __tablename__ = "seen_proofs"
    proof_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class AdminAuditRecord(Base):
    """One admin action. Append-only: rows chain by hash (issuer.audit)."""

    __tablename__ = "admin_audit"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(8))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(String(1000))
    address: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8))  # console | api | cli
    outcome: Mapped[str] = mapped_column(String(16))  # ok | denied | failed
    outbox_ids: Mapped[str] = mapped_column(String(2000))  # comma-separated
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary)
    row_hash: Mapped[bytes] = mapped_column(LargeBinary)
