"""Conversion lineage end to end, both regions on loopback over real HTTP.

The laundering path this closes: a green GD resident converts their GD code into an MO
code; GD then records a positive test and revokes the GD credential. Before, the MO
code stayed ADMIT, MO's issuer handed it out green on refresh, and converting it back
at GD gave a new green GD credential. Now:

- a station DENYs the MO code `source_revoked` as soon as its view of GD's log shows
  the revocation (no wait for MO);
- MO's issuer re-checks the source on every refresh (409 source_revoked) and its sweep
  after each periodic sync revokes conversions nobody refreshes, on MO's log;
- GD's issuer maps a converted-back code to its own resident's record: red stays red,
  and no second holder appears for the device key.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from credential.claims import SourceRef, StatusColour
from credential.issue import read_claims_unverified
from credential.presentation import make_presentation
from credential.verdict import Decision, Reason
from credential.verify import verify_presentation
from issuer.admin.accounts import Role
from issuer.admin.services import Actor, AdminService, EntryState
from issuer.app import create_app, sweep_conversions
from issuer.conversion import SyncedTrustSource
from issuer.ledger_state import ConsortiumCheckpoints
from issuer.lineage import REVOKE_REASON_SOURCE_REVOKED
from issuer.models import CredentialRow, Holder
from issuer.residents import add_records
from issuer.status_rules import HealthRecord, LabResult, RecordKind
from issuer.testing import device_header, enrol_directly, new_device, serve
from ledger.clients.sync import SyncClient, SyncedTrustState
from ledger.log.consortium import Consortium
from tests.support.issuer_joint import JointRegion, JointWorld, joint_world, wait_for

pytestmark = pytest.mark.slow


@dataclass
class Both:
    world: JointWorld
    urls: dict[str, str]
    sources: dict[str, SyncedTrustSource]
    apps: dict[str, object]
    tmp: Path

    def region(self, rid: str) -> JointRegion:
        return self.world.regions[rid]

    def station_view(self) -> SyncedTrustState:
        """A full-mode station: synced from both logs right now."""
        path = self.tmp / f"station-{time.monotonic_ns()}.db"
        client = SyncClient(Consortium.load(self.world.consortium_path), path)
        try:
            client.sync()
        finally:
            client.close()
        return SyncedTrustState(path)


@pytest.fixture
def both(tmp_path: Path) -> Iterator[Both]:
    with joint_world(tmp_path) as world:
        urls: dict[str, str] = {}
        sources: dict[str, SyncedTrustSource] = {}
        apps: dict[str, object] = {}
        servers = []
        for rid, region in world.regions.items():
            cfg = region.ctx.config
            assert cfg.sync_state_path is not None
            source = SyncedTrustSource(world.consortium_path, cfg.sync_state_path, 0.0)
            app = create_app(cfg, context=region.ctx, trust=source, start_workers=False)
            sources[rid], apps[rid] = source, app
            servers.append(serve(app))
        try:
            for rid, cm in zip(world.regions, servers, strict=True):
                urls[rid] = cm.__enter__().url
            yield Both(world, urls, sources, apps, tmp_path)
        finally:
            for cm in servers:
                cm.__exit__(None, None, None)


def cosigned(region: JointRegion, outbox_id: int) -> None:
    region.anchor_all()
    source = ConsortiumCheckpoints.from_context(region.ctx)
    assert source is not None
    service = AdminService(region.ctx)
    actor = Actor("admin", region.ctx.region, frozenset({Role.OPERATOR, Role.KEY_ADMIN}))
    wait_for(
        lambda: service.entry_status(actor, outbox_id, source).state is EntryState.COSIGNED,
        f"{region.ctx.region} outbox entry {outbox_id} to be cosigned",
    )


def convert(url: str, qr: str) -> requests.Response:
    return requests.post(f"{url}/v1/conversion", json={"presentation": qr}, timeout=30)


def fetch(url: str, device, holder_id: str) -> requests.Response:  # type: ignore[no-untyped-def]
    header = device_header(device, holder_id, "GET", "/v1/credential")
    return requests.get(f"{url}/v1/credential", headers={"Authorization": header}, timeout=30)


def positive_test(region: JointRegion, doc: str) -> int:
    """GD's health authority records a positive test: GD revokes the resident's
    credentials. Returns the outbox id of the revocation, once it is cosigned."""
    add_records(
        region.ctx,
        [(doc, HealthRecord(RecordKind.TEST, int(time.time()) - 60, LabResult.POSITIVE))],
        "api",
    )
    with region.ctx.sessions() as s:
        from issuer.models import OutboxRow

        box = s.scalars(
            select(OutboxRow.id)
            .where(OutboxRow.kind == "credential_revoked")
            .order_by(OutboxRow.id.desc())
        ).first()
    assert box is not None
    cosigned(region, box)
    return box


def green_gd_converted_to_mo(both: Both, doc: str):  # type: ignore[no-untyped-def]
    gd, mo = both.region("GD"), both.region("MO")
    device = new_device()
    enrolled = enrol_directly(gd.ctx, doc, device)
    cosigned(gd, enrolled.issued.outbox_id)
    r = convert(
        both.urls["MO"], make_presentation(enrolled.issued.credential.jws, device, time.time())
    )
    assert r.status_code == 201, r.text
    mo_jws = r.json()["credential"]
    claims = read_claims_unverified(mo_jws)
    assert claims.region == "MO"
    assert claims.source == SourceRef("GD", enrolled.issued.credential.status_index)
    with mo.ctx.sessions() as s:
        row = s.scalars(select(CredentialRow).where(CredentialRow.jws == mo_jws)).one()
        outbox = s.scalars(select(func.max(__import__("issuer.models").models.OutboxRow.id))).one()
    cosigned(mo, outbox)
    return device, enrolled, r.json()["holder_id"], mo_jws, row.status_index


def test_station_denies_a_conversion_whose_gd_source_was_revoked(both: Both) -> None:
    device, enrolled, _holder, mo_jws, _ = green_gd_converted_to_mo(both, "G10000001")
    before = both.station_view()
    qr = make_presentation(mo_jws, device, time.time())
    assert verify_presentation(qr, before, time.time()).decision is Decision.ADMIT
    positive_test(both.region("GD"), "G10000001")
    after = both.station_view()
    gd_qr = make_presentation(enrolled.issued.credential.jws, device, time.time())
    assert verify_presentation(gd_qr, after, time.time()).reasons == (Reason.REVOKED,)
    v = verify_presentation(make_presentation(mo_jws, device, time.time()), after, time.time())
    # MO has done nothing yet: the station reads GD's revocation directly.
    assert v.decision is Decision.DENY and v.reasons == (Reason.SOURCE_REVOKED,)


def test_mo_refresh_rechecks_the_source_and_revokes_the_conversion(both: Both) -> None:
    device, _enrolled, holder_id, _mo_jws, mo_index = green_gd_converted_to_mo(both, "G10000002")
    ok = fetch(both.urls["MO"], device, holder_id)
    assert ok.status_code == 200, ok.text
    positive_test(both.region("GD"), "G10000002")
    both.sources["MO"].refresh()  # MO's synced mirror of GD's log catches up
    refused = fetch(both.urls["MO"], device, holder_id)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] == "source_revoked"
    mo = both.region("MO")
    with mo.ctx.sessions() as s:
        row = s.scalars(select(CredentialRow).where(CredentialRow.status_index == mo_index)).one()
        assert row.state == "revoked" and row.revoke_reason == REVOKE_REASON_SOURCE_REVOKED
    # The revocation reaches MO's log: a station that trusted only MO's own state
    # (the source check aside) denies the code `revoked`.
    mo.anchor_all()
    again = fetch(both.urls["MO"], device, holder_id)
    assert again.status_code == 409 and again.json()["error"] == "source_revoked"


def test_mo_sweep_revokes_conversions_nobody_refreshes(both: Both) -> None:
    _device, _enrolled, _holder_id, _mo_jws, mo_index = green_gd_converted_to_mo(both, "G10000004")
    positive_test(both.region("GD"), "G10000004")
    both.sources["MO"].refresh()
    assert sweep_conversions(both.apps["MO"], both.sources["MO"]) == 1  # type: ignore[arg-type]
    assert sweep_conversions(both.apps["MO"], both.sources["MO"]) == 0  # type: ignore[arg-type]
    with both.region("MO").ctx.sessions() as s:
        row = s.scalars(select(CredentialRow).where(CredentialRow.status_index == mo_index)).one()
        assert row.state == "revoked"


def test_converting_back_a_revoked_lineage_is_refused_not_laundered(both: Both) -> None:
    device, _enrolled, _holder, mo_jws, _ = green_gd_converted_to_mo(both, "G10000005")
    positive_test(both.region("GD"), "G10000005")
    both.sources["GD"].refresh()
    r = convert(both.urls["GD"], make_presentation(mo_jws, device, time.time()))
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "source_revoked"
    gd = both.region("GD")
    with gd.ctx.sessions() as s:
        active_green = s.scalars(
            select(func.count())
            .select_from(CredentialRow)
            .join(Holder, Holder.id == CredentialRow.holder_pk)
            .where(Holder.device_key == read_claims_unverified(mo_jws).holder_key)
            .where(CredentialRow.state == "active", CredentialRow.colour == "green")
        ).one()
    assert active_green == 0


def test_converting_back_maps_to_the_residents_own_record(both: Both) -> None:
    """While the source stands, the code converted back is the resident's own GD
    record (same holder, same status), never a new holder with carried colours."""
    device, enrolled, _holder, mo_jws, _ = green_gd_converted_to_mo(both, "G10000003")
    gd = both.region("GD")
    with gd.ctx.sessions() as s:
        holders_before = s.scalars(select(func.count()).select_from(Holder)).one()
    both.sources["GD"].refresh()
    r = convert(both.urls["GD"], make_presentation(mo_jws, device, time.time()))
    assert r.status_code == 201, r.text
    assert r.json()["holder_id"] == enrolled.holder_id
    back = read_claims_unverified(r.json()["credential"])
    assert back.region == "GD" and back.source is None
    with gd.ctx.sessions() as s:
        assert s.scalars(select(func.count()).select_from(Holder)).one() == holders_before
    # Then GD turns the resident red: the wallet's GD refresh is red, not green.
    add_records(
        gd.ctx,
        [("G10000003", HealthRecord(RecordKind.TEST, int(time.time()) - 60, LabResult.POSITIVE))],
        "api",
    )
    red = fetch(both.urls["GD"], device, enrolled.holder_id)
    assert red.status_code == 200, red.text
    assert read_claims_unverified(red.json()["credential"]).colour is StatusColour.RED


def test_mo_refuses_to_convert_its_own_conversion(both: Both) -> None:
    """A code MO converted is MO's: MO does not convert it again."""
    device, _enrolled, _holder, mo_jws, _ = green_gd_converted_to_mo(both, "G10000006")
    r = convert(both.urls["MO"], make_presentation(mo_jws, device, time.time()))
    assert r.status_code == 422 and r.json()["reason"] == "same_region"


def test_a_code_newer_than_the_issuers_view_is_converted_after_a_forced_sync(
    both: Both,
) -> None:
    """MO's periodic sync is an hour away: a GD code issued since its last sync is
    not in MO's view (not_yet_anchored); MO syncs once on demand, then converts."""
    mo_source = both.sources["MO"]
    mo_source.min_interval_s = 3600.0
    mo_source.refresh(force=True)  # MO's view as of now
    gd = both.region("GD")
    device = new_device()
    enrolled = enrol_directly(gd.ctx, "G10000002", device)
    cosigned(gd, enrolled.issued.outbox_id)
    qr = make_presentation(enrolled.issued.credential.jws, device, time.time())
    r = convert(both.urls["MO"], qr)
    assert r.status_code == 201, r.text


def test_admins_cannot_pick_the_issuers_own_source_revoked_reason() -> None:
    from issuer.admin.services import REVOCATION_REASONS

    assert "source_revoked" not in REVOCATION_REASONS
    assert "administrative" in REVOCATION_REASONS
