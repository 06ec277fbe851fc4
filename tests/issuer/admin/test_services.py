"""The service layer with an in-memory ledger: region-scoped permissions, revocation,
bulk revocation, overrides, key rotation and compromise, rate limits, the outbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from credential.claims import StatusColour
from issuer import anchor, enrolment, keymgmt
from issuer.admin.accounts import Role
from issuer.admin.services import Actor, AdminService, EntryState
from issuer.context import IssuerContext, ManualClock
from issuer.errors import (
    CodeExpiredError,
    ConflictError,
    PermissionDenied,
    RateLimitedError,
    SigningKeyError,
    WrongCodeError,
)
from issuer.issuance import current_credential
from issuer.models import CredentialRow, Holder
from issuer.testing import device_key_text, enrol_directly, make_context, new_device
from ledger.log.entries import (
    CredentialAnchored,
    CredentialReinstated,
    CredentialRevoked,
    KeyAdded,
    KeyRevoked,
    decode_entry,
    root_public_key_bytes,
    verify_key_entry,
)

GD_ADMIN = Actor("alice", "GD", frozenset({Role.OPERATOR, Role.KEY_ADMIN}))
MO_ADMIN = Actor("bruno", "MO", frozenset({Role.OPERATOR, Role.KEY_ADMIN}))


@pytest.fixture()
def ctx(tmp_path: Path) -> IssuerContext:
    return make_context(tmp_path, "GD", clock=ManualClock())


def entries(ledger: anchor.InMemoryLedger) -> list[object]:
    return [decode_entry(e) for e in ledger.entries]


def test_mo_admin_can_never_act_on_gd_credentials_or_keys(ctx: IssuerContext) -> None:
    issued = enrol_directly(ctx, "G10000001", new_device()).issued
    svc = AdminService(ctx)
    idx = issued.credential.status_index
    for attempt in (
        lambda: svc.revoke(MO_ADMIN, idx, "fraud"),
        lambda: svc.revoke(MO_ADMIN, idx, "fraud", region="GD"),
        lambda: svc.reinstate(MO_ADMIN, idx, "administrative"),
        lambda: svc.bulk_revoke(MO_ADMIN, [idx], "fraud"),
        lambda: svc.override_status(MO_ADMIN, "G10000001", StatusColour.RED, "x"),
        lambda: svc.rotate_key(MO_ADMIN),
        lambda: svc.revoke_key(MO_ADMIN, issued.credential.kid, None, "x"),
        lambda: svc.find_credentials(MO_ADMIN, status_index=idx),
        lambda: svc.revoke(GD_ADMIN, idx, "fraud", region="MO"),
    ):
        with pytest.raises(PermissionDenied):
            attempt()
    with pytest.raises(PermissionDenied):
        svc.revoke(Actor("vera", "GD", frozenset({Role.VIEWER})), idx, "fraud")
    with pytest.raises(PermissionDenied):
        svc.rotate_key(Actor("otto", "GD", frozenset({Role.OPERATOR})))
    assert svc.find_credentials(GD_ADMIN, status_index=idx)[0].state == "active"


def test_revoke_reinstate_reach_the_log_and_entry_state_progresses(ctx: IssuerContext) -> None:
    ledger = anchor.InMemoryLedger()
    issued = enrol_directly(ctx, "G10000001", new_device()).issued
    svc = AdminService(ctx)
    idx = issued.credential.status_index
    pending = svc.revoke(GD_ADMIN, idx, "fraud", "reported stolen phone")
    assert svc.entry_state(GD_ADMIN, pending.outbox_id) is EntryState.PENDING
    with pytest.raises(ConflictError):
        svc.revoke(GD_ADMIN, idx, "fraud")
    anchor.drain(ctx, ledger)
    assert svc.entry_state(GD_ADMIN, pending.outbox_id) is EntryState.SEQUENCED
    from issuer.ledger_state import CheckpointView

    size = len(ledger.entries)
    assert (
        svc.entry_state(GD_ADMIN, pending.outbox_id, lambda: CheckpointView(size, False))
        is EntryState.ANCHORED
    )
    assert (
        svc.entry_state(GD_ADMIN, pending.outbox_id, lambda: CheckpointView(size, True))
        is EntryState.COSIGNED
    )
    svc.reinstate(GD_ADMIN, idx, "issued_in_error")
    anchor.drain(ctx, ledger)
    kinds = [type(e) for e in entries(ledger)]
    assert kinds[-2:] == [CredentialRevoked, CredentialReinstated]


def test_bulk_revoke_reports_progress_and_skips_revoked(ctx: IssuerContext) -> None:
    indices = [
        enrol_directly(ctx, doc, new_device()).issued.credential.status_index
        for doc in ("G10000001", "G10000002", "G10000003")
    ]
    svc = AdminService(ctx)
    svc.revoke(GD_ADMIN, indices[0], "fraud")
    seen: list[tuple[int, int]] = []
    done = svc.bulk_revoke(
        GD_ADMIN,
        [*indices, 999_999],
        "administrative",
        progress=lambda d, t: seen.append((d, t)),
        batch=2,
    )
    assert len(done) == 2 and seen == [(2, 4), (4, 4)]


def test_status_override_revokes_outstanding_and_next_fetch_is_fresh(ctx: IssuerContext) -> None:
    issued = enrol_directly(ctx, "G10000001", new_device()).issued
    pending = AdminService(ctx).override_status(
        GD_ADMIN, "G10000001", StatusColour.RED, "contact of a confirmed case"
    )
    assert [p.ref for p in pending] == [str(issued.credential.status_index)]
    with ctx.sessions.begin() as s:
        holder = s.get_one(Holder, issued.credential.holder_pk)
        fresh = current_credential(ctx, s, holder, ctx.now())
    assert fresh.fresh and fresh.credential.colour == "red"
    assert fresh.credential.status_index > issued.credential.status_index


def test_status_indices_are_never_reused(ctx: IssuerContext) -> None:
    for doc in ("G10000001", "G10000002", "G10000003", "G10000004"):
        enrol_directly(ctx, doc, new_device())
    with ctx.sessions() as s:
        idx = [c.status_index for c in s.query(CredentialRow)]
    assert len(set(idx)) == len(idx) == 4


def test_rotation_keeps_old_key_valid_and_compromise_is_logged(ctx: IssuerContext) -> None:
    ledger = anchor.InMemoryLedger()
    first = enrol_directly(ctx, "G10000001", new_device()).issued.credential.kid
    svc = AdminService(ctx)
    svc.rotate_key(GD_ADMIN)
    second = enrol_directly(ctx, "G10000002", new_device()).issued.credential.kid
    assert first != second
    ctx.clock.advance(10)  # type: ignore[attr-defined]
    svc.revoke_key(GD_ADMIN, second, ctx.now() - 5, "key file leaked")
    anchor.drain(ctx, ledger)
    root = root_public_key_bytes(ctx.keys.root_key())
    key_entries = [e for e in entries(ledger) if isinstance(e, KeyAdded | KeyRevoked)]
    for e in key_entries:
        verify_key_entry(e, root)  # signed by the region root key
    revoked = {e.kid: e for e in key_entries if isinstance(e, KeyRevoked)}
    assert revoked[first].compromised_at is None and revoked[first].retired_at > 0
    assert revoked[second].compromised_at == ctx.now() - 5
    with pytest.raises(SigningKeyError):  # nothing active any more
        enrol_directly(ctx, "G10000003", new_device())
    with pytest.raises(ConflictError):
        keymgmt.revoke_key(ctx, second, ctx.now())


def test_wrong_expired_and_reused_codes_are_refused(ctx: IssuerContext) -> None:
    dev = device_key_text(new_device())
    enrolment.request_code(ctx, "G10000001", "10.0.0.1")
    with pytest.raises(WrongCodeError):
        enrolment.enrol(ctx, "G10000001", "12345678x", dev, "10.0.0.1")
    ctx.clock.advance(ctx.config.code_ttl_s + 1)  # type: ignore[attr-defined]
    code = ctx.delivery.sent["G10000001"]  # type: ignore[union-attr]
    with pytest.raises(CodeExpiredError):
        enrolment.enrol(ctx, "G10000001", code, dev, "10.0.0.1")
    enrolment.request_code(ctx, "G10000001", "10.0.0.1")
    code = ctx.delivery.sent["G10000001"]  # type: ignore[union-attr]
    enrolment.enrol(ctx, "G10000001", code, dev, "10.0.0.1")
    with pytest.raises(CodeExpiredError):  # single use
        enrolment.enrol(ctx, "G10000001", code, dev, "10.0.0.1")


def test_code_guessing_is_rate_limited_per_document(ctx: IssuerContext) -> None:
    dev = device_key_text(new_device())
    enrolment.request_code(ctx, "G10000002", "10.0.0.2")
    for _ in range(ctx.config.attempts_per_doc):
        with pytest.raises(WrongCodeError):
            enrolment.enrol(ctx, "G10000002", "00000000", dev, "10.0.0.2")
    right = ctx.delivery.sent["G10000002"]  # type: ignore[union-attr]
    with pytest.raises(RateLimitedError):  # even the right code, until the window passes
        enrolment.enrol(ctx, "G10000002", right, dev, "10.0.0.2")
    ctx.clock.advance(ctx.config.rate_window_s + 1)  # type: ignore[attr-defined]
    enrolment.request_code(ctx, "G10000002", "10.0.0.2")
    enrolment.enrol(ctx, "G10000002", ctx.delivery.sent["G10000002"], dev, "10.0.0.2")  # type: ignore[union-attr]


def test_code_requests_are_rate_limited_per_address(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, "GD", clock=ManualClock(), code_requests_per_addr=3)
    for doc in ("G10000001", "G10000002", "G10000003"):
        enrolment.request_code(ctx, doc, "10.9.9.9")
    with pytest.raises(RateLimitedError):
        enrolment.request_code(ctx, "G10000004", "10.9.9.9")


def test_ledger_outage_backs_off_and_loses_nothing(ctx: IssuerContext) -> None:
    ledger = anchor.InMemoryLedger(fail_next=2)
    for doc in ("G10000001", "G10000002"):
        enrol_directly(ctx, doc, new_device())
    assert anchor.anchor_once(ctx, ledger) == 0  # fails, backs off
    assert anchor.anchor_once(ctx, ledger) == 0  # not due yet: nothing sent
    assert ledger.fail_next == 1
    ctx.clock.advance(60)  # type: ignore[attr-defined]
    assert anchor.anchor_once(ctx, ledger) == 0  # second failure
    ctx.clock.advance(60)  # type: ignore[attr-defined]
    assert anchor.drain(ctx, ledger) == 3  # KeyAdded + two anchors
    assert anchor.pending_count(ctx) == 0
    anchored = [e for e in entries(ledger) if isinstance(e, CredentialAnchored)]
    assert len(anchored) == 2


def test_one_refused_entry_is_quarantined_and_the_rest_anchor_at_once(
    ctx: IssuerContext,
) -> None:
    from issuer.models import OutboxRow

    ledger = anchor.InMemoryLedger()
    for doc in ("G10000001", "G10000002", "G10000003"):
        enrol_directly(ctx, doc, new_device())
    with ctx.sessions() as s:
        poisoned = s.get_one(OutboxRow, 3)  # the second credential's anchor
        ledger.refuse.add(poisoned.entry)
    assert anchor.anchor_once(ctx, ledger) == 3  # KeyAdded + two anchors, in one round
    assert anchor.pending_count(ctx) == 0
    [q] = anchor.quarantined(ctx)
    assert q.id == 3 and "injected_rule" in q.error
    assert anchor.anchor_once(ctx, ledger) == 0  # never sent again
    assert len(ledger.entries) == 3


def test_rows_failing_together_retry_at_jittered_times(ctx: IssuerContext) -> None:
    from sqlalchemy import select

    from issuer.models import OutboxRow

    ledger = anchor.InMemoryLedger(fail_next=1)
    for doc in ("G10000001", "G10000002", "G10000003"):
        enrol_directly(ctx, doc, new_device())
    assert anchor.anchor_once(ctx, ledger) == 0
    with ctx.sessions() as s:
        due = set(s.scalars(select(OutboxRow.next_attempt_at)).all())
    assert len(due) > 1  # not one burst when the node comes back


def test_a_revocation_written_during_an_outage_never_overtakes_its_anchor(
    ctx: IssuerContext,
) -> None:
    ledger = anchor.InMemoryLedger()
    anchor.drain(ctx, ledger)  # the key registration
    ledger.fail_next = 1
    enrolled = enrol_directly(ctx, "G10000001", new_device())
    assert anchor.anchor_once(ctx, ledger) == 0  # the anchor row backs off
    AdminService(ctx).revoke(GD_ADMIN, enrolled.issued.credential.status_index, "fraud", "t")
    assert anchor.anchor_once(ctx, ledger) == 0  # the new revocation waits behind it
    ctx.clock.advance(60)  # type: ignore[attr-defined]
    assert anchor.drain(ctx, ledger) == 2
    kinds = [type(e).__name__ for e in entries(ledger)]
    assert kinds[-2:] == ["CredentialAnchored", "CredentialRevoked"]
