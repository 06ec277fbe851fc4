"""The admin audit log: hash chain, append-only enforcement (ORM and database
trigger), CSV export, and the AuditDigest anchored through the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from issuer import audit
from issuer.audit import AuditChainError, AuditEvent, Channel, Outcome
from issuer.config import IssuerConfig
from issuer.context import IssuerContext, ManualClock
from issuer.models import AdminAuditRecord, OutboxRow
from ledger.log.entries import AuditDigest, decode_entry


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[IssuerContext]:
    c = IssuerContext.open(IssuerConfig(region="GD", data_dir=tmp_path), clock=ManualClock())
    yield c
    c.dispose()


def ev(action: str = "revoke", target: str = "GD:17", detail: str = "fraud") -> AuditEvent:
    return AuditEvent("alice", "GD", action, target, detail, "127.0.0.1", Channel.CONSOLE,
                      Outcome.OK, (3,))  # fmt: skip


def fill(ctx: IssuerContext, n: int) -> None:
    for i in range(n):
        audit.record(ctx.sessions, ev(target=f"GD:{i}"), 1_800_000_000 + i)


def test_chain_verifies_and_head_moves(ctx: IssuerContext) -> None:
    fill(ctx, 5)
    with ctx.sessions() as s:
        assert audit.verify_all(s) == 5
        n, digest = audit.head(s)
        assert n == 5 and digest == audit.rows(s, 1)[0].row_hash


def test_orm_refuses_update_and_delete(ctx: IssuerContext) -> None:
    fill(ctx, 2)
    with pytest.raises(AuditChainError, match="append-only"), ctx.sessions.begin() as s:
        s.scalars(select(AdminAuditRecord)).first().detail = "nothing happened"  # type: ignore[union-attr]
    with pytest.raises(AuditChainError, match="append-only"), ctx.sessions.begin() as s:
        s.delete(s.scalars(select(AdminAuditRecord)).first())


def test_database_trigger_refuses_raw_sql_edits(ctx: IssuerContext) -> None:
    fill(ctx, 2)
    for stmt in ("UPDATE admin_audit SET detail = 'x'", "DELETE FROM admin_audit"):
        with pytest.raises(Exception, match="append-only"), ctx.sessions.begin() as s:
            s.execute(text(stmt))
    with ctx.sessions() as s:
        assert audit.verify_all(s) == 2


def test_tampered_row_breaks_the_chain(ctx: IssuerContext) -> None:
    fill(ctx, 3)
    with ctx.sessions() as s:
        rows = list(reversed(audit.rows(s)))
    s.expunge_all()
    rows[1].detail = "edited afterwards"
    with pytest.raises(AuditChainError, match="audit row 2"):
        audit.verify_chain(rows)
    with pytest.raises(AuditChainError, match="expected audit row 2, found 3"):
        audit.verify_chain([rows[0], rows[2]])


def test_digest_is_anchored_once_per_growth(ctx: IssuerContext) -> None:
    assert audit.anchor_digest(ctx.sessions, "GD", 1_800_000_000) is None  # empty log
    fill(ctx, 4)
    box = audit.anchor_digest(ctx.sessions, "GD", 1_800_000_010)
    assert box is not None
    assert audit.anchor_digest(ctx.sessions, "GD", 1_800_000_020) is None  # unchanged
    with ctx.sessions() as s:
        entry = decode_entry(s.get_one(OutboxRow, box).entry)
        n, digest = audit.head(s)
    assert entry == AuditDigest(region="GD", digest=digest, count=n)
    fill(ctx, 1)
    assert audit.anchor_digest(ctx.sessions, "GD", 1_800_000_030, min_interval_s=60) is None
    assert audit.anchor_digest(ctx.sessions, "GD", 1_800_000_080, min_interval_s=60) is not None
