"""The sync client against in-memory sources: quorum, forks, rollback, resume, and a
credential verified end to end against the synced state."""

from __future__ import annotations

from pathlib import Path

import pytest

from credential.claims import HealthClaims, StatusColour
from credential.issue import sign_credential
from credential.keys import SigningAlg, generate_private_key, key_id, public_key_der
from credential.presentation import make_presentation
from credential.verdict import Decision, Reason
from credential.verify import verify_presentation
from ledger.clients.sync import (
    RegionStatus,
    SyncClient,
    SyncedTrustState,
    frontier_append,
    frontier_root,
)
from ledger.log.entries import CredentialAnchored, CredentialRevoked, RevocationReason
from ledger.log.merkle import leaf_hash, root_hash
from tests.support.ledger_joint import (
    MemoryLog,
    MemorySource,
    consortium_of,
    key_added,
    leaf_of,
    member_keys,
)

NOW = 1_700_000_100


@pytest.fixture
def world(tmp_path: Path):
    gd, mo = member_keys("GD"), member_keys("MO")
    consortium = consortium_of(gd, mo)
    logs = {"GD": MemoryLog(gd), "MO": MemoryLog(mo)}
    sources = {r: [MemorySource(logs[r], [gd, mo], name=f"{r}-node")] for r in logs}
    client = SyncClient(consortium, tmp_path / "state.db", sources=lambda r: sources[r],
                        clock=lambda: NOW)  # fmt: skip
    return gd, mo, logs, sources, client, tmp_path / "state.db"


def test_frontier_matches_rfc_9162_root() -> None:
    hashes = [leaf_hash(i.to_bytes(2, "big")) for i in range(300)]
    frontier: list[bytes] = []
    size = 0
    for n in (1, 2, 5, 64, 100, 128):
        size = frontier_append(frontier, size, hashes[size : size + n])
        assert frontier_root(frontier) == root_hash(hashes[:size])


def test_station_syncs_keys_anchors_and_revocations(world) -> None:
    gd, _, logs, _, client, db = world
    issuer = generate_private_key()
    kid = key_id(public_key_der(issuer))
    logs["GD"].leaves += [
        leaf_of(key_added(gd, issuer)),
        leaf_of(CredentialAnchored("GD", b"\x01" * 32, 7, kid, 1_800_000_000)),
        leaf_of(CredentialRevoked("GD", 7, RevocationReason.FRAUD, 1_700_000_000)),
    ]
    seen = []
    report = client.sync(progress=seen.append)
    assert report.region("GD").status is RegionStatus.UPDATED
    assert report.region("GD").new_size == 3
    assert report.region("MO").status is RegionStatus.UNCHANGED
    assert seen[-1].done == seen[-1].total == 3
    state = SyncedTrustState(db)
    assert state.key("GD", kid).public_key_der == public_key_der(issuer)
    assert state.is_revoked("GD", 7) and not state.is_revoked("GD", 8)
    assert state.anchored_at("GD", b"\x01" * 32) == 1_700_000_000
    assert state.synced_at("GD") == 1_700_000_000
    assert report.staleness_s("GD") == 100


def test_quorum_not_met_keeps_last_state_and_reports_age(world) -> None:
    gd, _mo, logs, sources, client, db = world
    logs["GD"].leaves.append(leaf_of(key_added(gd, generate_private_key())))
    client.sync("GD")
    logs["GD"].leaves.append(leaf_of(key_added(gd, generate_private_key())))
    sources["GD"][0].cosigners = [gd]  # MO's witness is down: no MO cosignature
    report = client.sync("GD")
    r = report.region("GD")
    assert r.status is RegionStatus.FAILED and r.new_size == 1
    assert "quorum" in r.errors[0]
    assert SyncedTrustState(db).tree_size("GD") == 1


def test_station_refuses_a_fork(world) -> None:
    gd, _, logs, _, client, _ = world
    logs["GD"].leaves = [leaf_of(key_added(gd, generate_private_key())) for _ in range(2)]
    client.sync("GD")
    logs["GD"].leaves[1] = leaf_of(key_added(gd, generate_private_key()))
    r = client.sync("GD").region("GD")
    assert r.status is RegionStatus.FAILED and r.fork is not None
    assert SyncedTrustState(client.path).tree_size("GD") == 2


def test_falls_back_to_a_mirror_when_the_node_is_down(world) -> None:
    gd, mo, logs, sources, client, _ = world
    logs["GD"].leaves.append(leaf_of(key_added(gd, generate_private_key())))
    sources["GD"][0].down = True
    sources["GD"].append(MemorySource(logs["GD"], [gd, mo], name="MO-mirror"))
    r = client.sync("GD").region("GD")
    assert r.status is RegionStatus.UPDATED and r.source == "MO-mirror"
    assert "down" in r.errors[0]


def test_lying_mirror_entries_are_refused_and_next_source_used(world) -> None:
    gd, mo, logs, sources, client, db = world
    logs["GD"].leaves.append(leaf_of(key_added(gd, generate_private_key())))
    liar_log = MemoryLog(gd, [leaf_of(CredentialRevoked("GD", 1, RevocationReason.FRAUD, 1))])
    liar = MemorySource(liar_log, [gd, mo], name="liar")
    liar.checkpoint = sources["GD"][0].checkpoint  # honest checkpoint, forged entries
    sources["GD"].insert(0, liar)
    r = client.sync("GD").region("GD")
    assert r.status is RegionStatus.UPDATED and r.source == "GD-node"
    assert not SyncedTrustState(db).is_revoked("GD", 1)


def test_interrupted_sync_resumes_without_refetching(world) -> None:
    gd, _, logs, sources, client, _ = world
    issuer = generate_private_key()
    kid = key_id(public_key_der(issuer))
    logs["GD"].leaves.append(leaf_of(key_added(gd, issuer)))
    logs["GD"].leaves += [
        leaf_of(CredentialAnchored("GD", i.to_bytes(32, "big"), i, kid, 1_800_000_000))
        for i in range(1, 256 * 70)
    ]
    src = sources["GD"][0]
    real = src.entry_bundle

    def flaky(index: int, width: int) -> bytes:
        if index == 66:
            from ledger.clients.sync import SourceError

            raise SourceError("connection reset")
        return real(index, width)

    src.entry_bundle = flaky
    assert client.sync("GD").region("GD").status is RegionStatus.FAILED
    src.entry_bundle = real
    src.bundle_calls = 0
    assert client.sync("GD").region("GD").status is RegionStatus.UPDATED
    # Every bundle that arrived before the reset was staged: the first chunk of 64
    # and the two after it (kept when the chunk was cut short).
    assert src.bundle_calls == 70 - 66


def test_credential_admitted_then_denied_after_revocation_sync(world) -> None:
    gd, _, logs, _, client, db = world
    issuer = generate_private_key()
    device = generate_private_key()
    kid = key_id(public_key_der(issuer))
    claims = HealthClaims(
        region="GD", kid=kid, status_index=42, issued_at=NOW - 60, not_before=NOW - 60,
        expires_at=NOW + 86_400, colour=StatusColour.GREEN,
        masked_name="C** T** M**", document_hint="**1234",
        holder_key=public_key_der(device),
    )  # fmt: skip
    jws = sign_credential(claims, issuer, SigningAlg.ES256)
    from credential.issue import credential_digest

    logs["GD"].leaves += [
        leaf_of(key_added(gd, issuer)),
        leaf_of(CredentialAnchored("GD", credential_digest(jws), 42, kid, NOW + 86_400)),
    ]
    client.sync()
    state = SyncedTrustState(db)
    qr = make_presentation(jws, device, NOW)
    assert verify_presentation(qr, state, NOW).decision is Decision.ADMIT
    logs["GD"].leaves.append(
        leaf_of(CredentialRevoked("GD", 42, RevocationReason.FRAUD, NOW), 1_700_000_050_000)
    )
    client.sync()
    verdict = verify_presentation(make_presentation(jws, device, NOW), state, NOW)
    assert verdict.decision is Decision.DENY and Reason.REVOKED in verdict.reasons


def test_a_lagging_station_still_takes_a_newer_view_older_than_its_max_age(
    world, tmp_path: Path
) -> None:
    gd, mo, logs, sources, _, _ = world
    logs["GD"].leaves.append(leaf_of(key_added(gd, generate_private_key())))
    client = SyncClient(consortium_of(gd, mo), tmp_path / "lag.db",
                        sources=lambda r: sources[r], clock=lambda: NOW, max_age_s=500)  # fmt: skip
    assert client.sync("GD").region("GD").status is RegionStatus.UPDATED
    # Much later, the witnesses were down for long: the newest view is older than the
    # max age but newer than what the station holds (new entries in it).
    logs["GD"].leaves.append(leaf_of(key_added(gd, generate_private_key())))
    sources["GD"][0].timestamp += 50
    client.clock = lambda: NOW + 10_000
    r = client.sync("GD").region("GD")
    assert r.status is RegionStatus.UPDATED and r.new_size == 2
    fresh = SyncClient(consortium_of(gd, mo), tmp_path / "fresh.db",
                       sources=lambda r: sources[r], clock=lambda: NOW + 10_000,
                       max_age_s=500)  # fmt: skip
    assert fresh.sync("GD").region("GD").status is RegionStatus.FAILED
