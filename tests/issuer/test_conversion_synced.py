"""Conversion against a real synced view: MO's issuer converts GD presentations with
SyncedTrustSource, which syncs GD's log (cosigned by GD's and MO's witnesses) from
GD's node over real HTTP into MO's local state. A GD credential revoked on GD's log is
refused with reason "revoked" once MO has synced the revocation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from credential.issue import read_claims_unverified
from credential.presentation import WINDOW_SECONDS, make_presentation
from issuer.admin.accounts import Role
from issuer.admin.services import Actor, AdminService, EntryState
from issuer.app import create_app
from issuer.conversion import SyncedTrustSource
from issuer.ledger_state import ConsortiumCheckpoints
from issuer.testing import enrol_directly, new_device, serve
from tests.support.issuer_joint import JointRegion, JointWorld, joint_world, wait_for

pytestmark = pytest.mark.slow
GD_ADMIN = Actor("admin", "GD", frozenset({Role.OPERATOR, Role.KEY_ADMIN}))


@dataclass
class Setup:
    world: JointWorld
    mo_url: str


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with joint_world(tmp_path) as world:
        mo = world.regions["MO"].ctx
        assert mo.config.sync_state_path is not None
        # min_interval 0: every conversion syncs first, as an on-demand refresh does.
        source = SyncedTrustSource(world.consortium_path, mo.config.sync_state_path, 0.0)
        app = create_app(mo.config, context=mo, trust=source, start_workers=False)
        with serve(app) as served:
            yield Setup(world, served.url)


def wait_cosigned(region: JointRegion, outbox_id: int) -> None:
    source = ConsortiumCheckpoints.from_context(region.ctx)
    assert source is not None
    service = AdminService(region.ctx)
    wait_for(
        lambda: service.entry_status(GD_ADMIN, outbox_id, source).state is EntryState.COSIGNED,
        f"outbox entry {outbox_id} to be cosigned",
    )


def convert(setup: Setup, qr: str) -> requests.Response:
    return requests.post(f"{setup.mo_url}/v1/conversion", json={"presentation": qr}, timeout=30)


def test_gd_presentation_converts_over_synced_gd_log(setup: Setup) -> None:
    gd = setup.world.regions["GD"]
    device = new_device()
    enrolled = enrol_directly(gd.ctx, "G10000001", device)
    gd.anchor_all()
    wait_cosigned(gd, enrolled.issued.outbox_id)
    qr = make_presentation(enrolled.issued.credential.jws, device, time.time())
    r = convert(setup, qr)
    assert r.status_code == 201, r.text
    claims = read_claims_unverified(r.json()["credential"])
    assert claims.region == "MO"
    assert claims.holder_key == read_claims_unverified(enrolled.issued.credential.jws).holder_key


def test_gd_credential_revoked_on_gd_log_is_refused_after_sync(setup: Setup) -> None:
    gd = setup.world.regions["GD"]
    device = new_device()
    enrolled = enrol_directly(gd.ctx, "G10000002", device)
    gd.anchor_all()
    wait_cosigned(gd, enrolled.issued.outbox_id)
    pending = AdminService(gd.ctx).revoke(
        GD_ADMIN, enrolled.issued.credential.status_index, "fraud", "test"
    )
    gd.anchor_all()
    wait_cosigned(gd, pending.outbox_id)
    qr = make_presentation(enrolled.issued.credential.jws, device, time.time())
    r = convert(setup, qr)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "presentation_refused"
    assert r.json()["reason"] == "revoked"


def test_unsynced_revocation_is_not_visible_but_once_cosigned_it_is(setup: Setup) -> None:
    """The revocation queued but not yet on GD's log changes nothing at MO (MO trusts
    only cosigned log state); once anchored and cosigned, MO refuses."""
    gd = setup.world.regions["GD"]
    device = new_device()
    enrolled = enrol_directly(gd.ctx, "G10000003", device)
    gd.anchor_all()
    wait_cosigned(gd, enrolled.issued.outbox_id)
    pending = AdminService(gd.ctx).revoke(
        GD_ADMIN, enrolled.issued.credential.status_index, "fraud", "test"
    )
    t = fresh_window_start()
    ok = convert(setup, make_presentation(enrolled.issued.credential.jws, device, t))
    assert ok.status_code == 201, ok.text
    gd.anchor_all()
    wait_cosigned(gd, pending.outbox_id)
    # A proof of the previous window: still fresh, not yet converted (no replay).
    qr = make_presentation(enrolled.issued.credential.jws, device, t - WINDOW_SECONDS)
    refused = convert(setup, qr)
    assert refused.status_code == 422, refused.text
    assert refused.json()["reason"] == "revoked"


def fresh_window_start() -> float:
    """Now, moved to the start of the next proof window when the current one is nearly
    over, so that a proof of the previous window stays fresh for the whole test."""
    now = time.time()
    left = WINDOW_SECONDS - now % WINDOW_SECONDS
    if left < WINDOW_SECONDS / 2:
        time.sleep(left + 0.1)
        now = time.time()
    return now


def test_compromise_of_a_retired_key_is_published_and_voids_forgeries(
    setup: Setup, tmp_path: Path
) -> None:
    """Rotate, then report the retired key stolen: the KeyRevoked escalation reaches GD's
    log (nothing stuck or quarantined), and a credential forged with the stolen key is
    DENY key_compromised at a station and refused by MO's conversion."""
    import dataclasses

    from credential.issue import sign_credential
    from credential.keys import SigningAlg
    from credential.verdict import Decision, Reason
    from credential.verify import verify_presentation
    from issuer import anchor
    from ledger.clients.sync import SyncClient, SyncedTrustState
    from ledger.log.consortium import load_consortium

    gd = setup.world.regions["GD"]
    device = new_device()
    enrolled = enrol_directly(gd.ctx, "G10000003", device)
    old_kid = enrolled.issued.credential.kid
    stolen = gd.ctx.keys.signing_key(old_kid)
    service = AdminService(gd.ctx)
    service.rotate_key(GD_ADMIN)
    gd.anchor_all()
    [pending] = service.revoke_key(GD_ADMIN, old_kid, gd.ctx.now(), "retired key file leaked")
    gd.anchor_all()
    assert anchor.pending_count(gd.ctx) == 0 and anchor.quarantined(gd.ctx) == []
    wait_cosigned(gd, pending.outbox_id)
    now = int(time.time())
    claims = dataclasses.replace(
        read_claims_unverified(enrolled.issued.credential.jws),
        status_index=999_999, issued_at=now, not_before=now, expires_at=now + 86_400,
    )  # fmt: skip
    forged = sign_credential(claims, stolen, SigningAlg.ES256)  # type: ignore[arg-type]
    qr = make_presentation(forged, device, time.time())
    station = SyncClient(load_consortium(setup.world.consortium_path), tmp_path / "station.db")
    try:
        assert station.sync("GD").region("GD").status.value == "updated"
    finally:
        station.close()
    verdict = verify_presentation(qr, SyncedTrustState(tmp_path / "station.db"), time.time())
    assert verdict.decision is Decision.DENY and Reason.KEY_COMPROMISED in verdict.reasons
    r = convert(setup, qr)
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "key_compromised"
