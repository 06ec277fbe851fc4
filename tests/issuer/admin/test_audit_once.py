"""Every admin action lands on the hash-chained audit log exactly once, with who, when,
what and from which address, written in the action's own transaction: an audit row
that cannot be written leaves the action undone. A refused attempt is one row too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from credential.claims import StatusColour
from issuer import audit
from issuer.admin import accounts, accounts_db
from issuer.admin.accounts import AdminPrincipal, Role
from issuer.admin.ops import AdminOps, Who
from issuer.app import create_app
from issuer.audit import Channel
from issuer.context import IssuerContext, ManualClock
from issuer.errors import PermissionDeniedError
from issuer.models import AdminAuditRecord, CredentialRow, OutboxRow, SigningKeyRow
from issuer.testing import enrol_directly, make_context, new_device

ADDRESS = "203.0.113.7"
ROLES = frozenset({Role.OPERATOR, Role.KEY_ADMIN})


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8192))


@pytest.fixture
def gd(tmp_path: Path) -> Iterator[tuple[IssuerContext, AdminOps, Who]]:
    # A fixed clock: each row's time is compared with ctx.now() after the action, and a
    # running clock could tick into the next second in between.
    ctx = make_context(tmp_path, "GD", clock=ManualClock())
    app = create_app(ctx.config, context=ctx, start_workers=False)
    accounts_db.create_account(ctx.sessions, "wong", "GD", ROLES, "a long pass phrase", 0)
    who = Who(AdminPrincipal("wong", "GD", ROLES), ADDRESS, Channel.API)
    yield ctx, app.extensions["issuer.admin_ops"], who
    ctx.dispose()


def rows_after(ctx: IssuerContext, seq: int) -> list[AdminAuditRecord]:
    with ctx.sessions() as s:
        assert audit.verify_all(s) >= seq
        return sorted((r for r in audit.rows(s) if r.seq > seq), key=lambda r: r.seq)


def head(ctx: IssuerContext) -> int:
    with ctx.sessions() as s:
        return audit.head(s)[0]


def one_row(ctx: IssuerContext, before: int, action: str, outbox_ids: list[int]) -> None:
    new = rows_after(ctx, before)
    assert [r.action for r in new] == [action], [(r.action, r.outcome) for r in new]
    row = new[0]
    assert (row.actor, row.region, row.address, row.channel, row.outcome) == (
        "wong",
        "GD",
        ADDRESS,
        "api",
        "ok",
    )
    assert row.at == ctx.now()
    assert row.outbox_ids == ",".join(map(str, outbox_ids))


def test_each_admin_action_yields_exactly_one_chained_audit_row(
    gd: tuple[IssuerContext, AdminOps, Who],
) -> None:
    ctx, ops, who = gd
    idx = enrol_directly(ctx, "G10000001", new_device()).issued.credential.status_index

    before = head(ctx)
    p = ops.revoke(who, "GD", idx, "fraud", "forged record")
    one_row(ctx, before, "revoke", [p.outbox_id])
    assert rows_after(ctx, before)[0].target == f"GD:{idx}"

    before = head(ctx)
    p = ops.reinstate(who, "GD", idx, "revoked_in_error", "")
    one_row(ctx, before, "reinstate", [p.outbox_id])

    before = head(ctx)
    ps = ops.override(who, "GD", "G10000001", StatusColour.RED, "contact tracing", None)
    one_row(ctx, before, "status_override", [e.outbox_id for e in ps])
    assert "G10000001" not in rows_after(ctx, before)[0].target  # no document numbers

    more = [enrol_directly(ctx, f"G1000000{i}", new_device()) for i in (2, 3)]
    indices = [m.issued.credential.status_index for m in more]
    preview = ops.bulk_preview(who, "GD", "\n".join(map(str, indices)).encode(), "fraud", "")
    before = head(ctx)
    ops.bulk_confirm(who, preview.job_id, wait=True)
    new = rows_after(ctx, before)
    assert [r.action for r in new] == ["bulk_confirm", "bulk_revoke"]
    with ctx.sessions() as s:
        revoked = s.query(OutboxRow).filter(OutboxRow.kind == "credential_revoked").all()
        bulk_ids = sorted(b.id for b in revoked if int(b.ref) in indices)
    assert new[1].outbox_ids == ",".join(map(str, bulk_ids)) and len(bulk_ids) == 2

    before = head(ctx)
    ps = ops.rotate_key(who, "GD")
    one_row(ctx, before, "rotate_key", [e.outbox_id for e in ps])

    with ctx.sessions() as s:
        old = s.query(SigningKeyRow).filter_by(state="retired").one().kid
    before = head(ctx)
    ps = ops.revoke_key(who, "GD", old, ctx.now() - 60, "laptop stolen")
    one_row(ctx, before, "revoke_key", [e.outbox_id for e in ps])
    assert rows_after(ctx, before)[0].target == f"GD:{old}"


def test_refused_attempt_is_one_denied_row(gd: tuple[IssuerContext, AdminOps, Who]) -> None:
    ctx, ops, who = gd
    before = head(ctx)
    with pytest.raises(PermissionDeniedError):
        ops.revoke(who, "MO", 1, "fraud", "")
    [row] = rows_after(ctx, before)
    assert (row.action, row.outcome, row.target) == ("revoke", "denied", "MO:1")


def test_action_whose_audit_row_fails_is_not_applied(
    gd: tuple[IssuerContext, AdminOps, Who], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between the change and its audit row cannot leave an unaudited change:
    both are one transaction."""
    ctx, ops, who = gd
    idx = enrol_directly(ctx, "G10000001", new_device()).issued.credential.status_index
    with ctx.sessions() as s:
        boxes = s.query(OutboxRow).count()

    def crash(*_args: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(audit, "append", crash)
    with pytest.raises(RuntimeError):
        ops.revoke(who, "GD", idx, "fraud", "")
    monkeypatch.undo()
    with ctx.sessions() as s:
        assert s.query(CredentialRow).filter_by(status_index=idx).one().state == "active"
        assert s.query(OutboxRow).count() == boxes
