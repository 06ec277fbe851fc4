"""What the public log learns from a revocation: an index and a time, never why.

Every QR shows its status index, so a reason on the public log next to that index
(`status_change`, `fraud`) would tell anyone who once scanned a code that its holder's
health status changed. The reason stays in the issuer's credential row and audit log.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from credential.claims import StatusColour
from issuer import anchor, log_entries
from issuer.admin.accounts import Role
from issuer.admin.services import Actor, AdminService
from issuer.context import IssuerContext, ManualClock
from issuer.models import AdminAuditRecord, CredentialRow
from issuer.testing import enrol_directly, make_context, new_device
from ledger.log.entries import CredentialRevoked, RevocationReason, decode_entry

GD_ADMIN = Actor("alice", "GD", frozenset({Role.OPERATOR, Role.KEY_ADMIN}))


@pytest.fixture()
def ctx(tmp_path: Path) -> IssuerContext:
    return make_context(tmp_path, "GD", clock=ManualClock())


def revocations(ledger: anchor.InMemoryLedger) -> list[CredentialRevoked]:
    return [e for e in map(decode_entry, ledger.entries) if isinstance(e, CredentialRevoked)]


def test_revocation_entry_carries_no_reason() -> None:
    entry = decode_entry(log_entries.credential_revoked("GD", 7, 1_800_000_000))
    assert entry == CredentialRevoked("GD", 7, RevocationReason.UNSPECIFIED, 1_800_000_000)


def test_status_change_is_not_readable_on_the_public_log(ctx: IssuerContext) -> None:
    """A scanner who noted a code's index sees it revoked, not that the holder's health
    status changed; the issuer still knows why."""
    ledger = anchor.InMemoryLedger()
    first = enrol_directly(ctx, "G10000001", new_device()).issued.credential
    second = enrol_directly(ctx, "G10000002", new_device()).issued.credential
    svc = AdminService(ctx)
    svc.override_status(GD_ADMIN, "G10000001", StatusColour.RED, "contact of a case")
    svc.revoke(GD_ADMIN, second.status_index, "fraud", "document reported stolen")
    anchor.drain(ctx, ledger)
    logged = revocations(ledger)
    assert {e.status_index for e in logged} == {first.status_index, second.status_index}
    assert {e.reason for e in logged} == {RevocationReason.UNSPECIFIED}
    for raw in ledger.entries:
        assert b"status_change" not in raw and b"fraud" not in raw
    with ctx.sessions() as s:
        rows = s.execute(select(CredentialRow.status_index, CredentialRow.revoke_reason)).all()
        reasons = {idx: why for idx, why in rows}
        details = [r.detail for r in s.scalars(select(AdminAuditRecord))]
    assert reasons[first.status_index] == "status_change"
    assert reasons[second.status_index] == "fraud"
    assert any(d.startswith("fraud:") for d in details)


def test_admins_give_a_real_reason_which_the_issuer_keeps(ctx: IssuerContext) -> None:
    from issuer.errors import BadRequestError

    idx = enrol_directly(ctx, "G10000003", new_device()).issued.credential.status_index
    with pytest.raises(BadRequestError):
        AdminService(ctx).revoke(GD_ADMIN, idx, "unspecified")
