"""SQLAlchemy models of the admin console: accounts, API tokens, sessions and
bulk-revocation jobs. The hash-chained audit log's table (`AdminAuditRecord`) lives
with the issuer's core models (issuer.models), below the console: issuer.audit writes
it without importing anything of the console.

They share the issuer's declarative `Base`, so one database and one Alembic history
hold everything; the tables are created by the revision
issuer/migrations/versions/0100_admin_console.py, which a test keeps in step with
these classes. No personal data: targets are status indices, credential ids and kids.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from issuer.models import Base


class AdminAccount(Base):
    __tablename__ = "admin_accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    region: Mapped[str] = mapped_column(String(8))
    roles: Mapped[str] = mapped_column(String(128))  # comma-separated Role values
    password_hash: Mapped[str] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)
    # The console's language for this admin (a credential.languages.Language value);
    # None: follow the browser's Accept-Language. Revision 0500_admin_language.
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)


class AdminApiToken(Base):
    __tablename__ = "admin_api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[str] = mapped_column(String(16), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("admin_accounts.id"), index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary)
    label: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class AdminSession(Base):
    """A console login: the cookie holds a random id, the table its hash."""

    __tablename__ = "admin_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sid_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("admin_accounts.id"), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_seen: Mapped[int] = mapped_column(BigInteger)
    address: Mapped[str] = mapped_column(String(64))
    ended: Mapped[bool] = mapped_column(Boolean, default=False)


class BulkJob(Base):
    """A bulk revocation: the parsed indices, then progress as the worker goes."""

    __tablename__ = "admin_bulk_jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("admin_accounts.id"), index=True)
    region: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(String(500))
    indices: Mapped[str] = mapped_column(Text)  # comma-separated status indices
    total: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16))  # preview|running|finished|failed
    message: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AdminLoginThrottle(Base):
    """Login attempts of one (username, address) pair (issuer.admin.login_guard)."""

    __tablename__ = "admin_login_throttle"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 hex of the pair
    username: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer)
    delay_s: Mapped[int] = mapped_column(Integer)  # the next backoff, seconds
    blocked_until: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
