"""Compact revocation end to end over real HTTP: GD's node commits a revocation
snapshot digest in every checkpoint, MO's witness re-derives it before cosigning, a
compact-mode station syncs checkpoint + quorum + snapshot (then XOR deltas) instead of
every entry, and answers revocation and key questions from it. What a compact station
cannot know (anchor times) makes it fail closed on credentials of compromised keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ledger.clients.sync import HttpLogSource, RegionStatus, SyncClient, SyncedTrustState
from ledger.joint.witness import AddCheckpointRequest
from ledger.log.checkpoint import Checkpoint, signed_checkpoint
from ledger.log.entries import (
    CredentialReinstated,
    CredentialRevoked,
    KeyRevoked,
    RevocationReason,
    sign_key_entry,
)
from ledger.log.revocation import find_extension, render_extension
from tests.support.joint_world import World, build_world, cosigned_by, shutdown, wait_for


class CountingSource(HttpLogSource):
    """The node's HTTP source, counting what a compact station fetches."""

    bundles = 0
    snapshots = 0
    deltas = 0

    def entry_bundle(self, index: int, width: int) -> bytes:
        CountingSource.bundles += 1
        return super().entry_bundle(index, width)

    def revocation_snapshot(self, digest: bytes) -> bytes:
        CountingSource.snapshots += 1
        return super().revocation_snapshot(digest)

    def revocation_delta(self, from_digest: bytes, to_digest: bytes) -> bytes:
        CountingSource.deltas += 1
        return super().revocation_delta(from_digest, to_digest)


class TamperingSource(HttpLogSource):
    def revocation_snapshot(self, digest: bytes) -> bytes:
        data = bytearray(super().revocation_snapshot(digest))
        data[-1] ^= 1
        return bytes(data)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path, [("GD", False), ("MO", False)], "all")
    try:
        yield w
    finally:
        shutdown(w)


def _compact_station(world: World, name: str, cls: type[HttpLogSource]) -> SyncClient:
    client = SyncClient(
        world.consortium,
        world.tmp / f"{name}.db",
        sources=lambda region: [cls(world.regions[region].url)],
        compact=True,
    )
    world.stations.append(client)
    return client


def _digest(world: World, region: str) -> bytes:
    cp = Checkpoint.parse(world.regions[region].checkpoint().decode().split("\n\n")[0] + "\n")
    d = find_extension(cp.extensions)
    assert d is not None
    return d


def test_compact_station_syncs_snapshot_then_deltas_without_entries(world: World) -> None:
    gd = world.regions["GD"]
    gd.register_key()
    for i in (1, 2, 3):
        gd.anchor(i)
    gd.submit(CredentialRevoked("GD", 2, RevocationReason.FRAUD, 1_700_000_000))
    wait_for(lambda: cosigned_by(gd, 5, 2), "GD size 5 cosigned by GD and MO")
    wait_for(lambda: cosigned_by(world.regions["MO"], 0, 2), "MO cosigned")

    station = _compact_station(world, "compact", CountingSource)
    report = station.sync()
    assert report.region("GD").status is RegionStatus.UPDATED
    assert report.region("GD").new_size == 5
    assert CountingSource.bundles == 0 and CountingSource.snapshots >= 1
    state = SyncedTrustState(world.tmp / "compact.db")
    try:
        assert state.is_revoked("GD", 2) and not state.is_revoked("GD", 1)
        assert state.key("GD", gd.kid) is not None
        # Compact mode keeps no anchors: compromised-key checks must fail closed.
        assert state.anchored_at("GD", (1).to_bytes(32, "big")) is None

        gd.submit(
            CredentialRevoked("GD", 3, RevocationReason.FRAUD, 1_700_000_100),
            CredentialReinstated("GD", 2, 1_700_000_200),
        )
        wait_for(lambda: cosigned_by(gd, 7, 2), "GD size 7 cosigned")
        before = CountingSource.snapshots
        assert station.sync("GD").region("GD").new_size == 7
        assert CountingSource.deltas >= 1 and CountingSource.snapshots == before
        assert state.is_revoked("GD", 3) and not state.is_revoked("GD", 2)

        root = gd.keys.root_key
        revoked_key = sign_key_entry(
            KeyRevoked("GD", gd.kid, 1_700_000_000, 1_700_000_000, "compromise"), root
        )
        gd.submit(revoked_key)
        wait_for(lambda: cosigned_by(gd, 8, 2), "GD size 8 cosigned")
        station.sync("GD")
        key = state.key("GD", gd.kid)
        assert key is not None and key.compromised_at == 1_700_000_000
        assert state.anchored_at("GD", (1).to_bytes(32, "big")) is None
    finally:
        state.close()
    assert CountingSource.bundles == 0


def test_snapshot_and_delta_urls_are_immutable_and_refuse_garbage(world: World) -> None:
    gd = world.regions["GD"]
    gd.register_key()
    wait_for(lambda: cosigned_by(gd, 1, 2), "GD size 1 cosigned")
    d = _digest(world, "GD")
    r = requests.get(f"{gd.url}/revocation/snapshot/{d.hex()}", timeout=5)
    assert r.status_code == 200 and "immutable" in r.headers["Cache-Control"]
    assert requests.get(f"{gd.url}/revocation/snapshot/zz", timeout=5).status_code == 400
    missing = requests.get(f"{gd.url}/revocation/snapshot/{'00' * 32}", timeout=5)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    bad = requests.get(f"{gd.url}/revocation/delta/{d.hex()}/nothex", timeout=5)
    assert bad.status_code == 400


def test_tampered_snapshot_is_refused_and_nothing_is_applied(world: World) -> None:
    gd = world.regions["GD"]
    gd.register_key()
    gd.anchor(1)
    gd.submit(CredentialRevoked("GD", 1, RevocationReason.FRAUD, 1_700_000_000))
    wait_for(lambda: cosigned_by(gd, 3, 2), "GD size 3 cosigned")
    station = _compact_station(world, "tampered", TamperingSource)
    report = station.sync("GD")
    assert report.region("GD").status is RegionStatus.FAILED
    assert any("digest mismatch" in e for e in report.region("GD").errors)
    state = SyncedTrustState(world.tmp / "tampered.db")
    try:
        assert not state.is_revoked("GD", 1) and "GD" not in state.regions()
    finally:
        state.close()


def test_witness_refuses_checkpoint_committing_a_wrong_snapshot_over_http(world: World) -> None:
    gd, mo = world.regions["GD"], world.regions["MO"]
    gd.register_key()
    gd.anchor(1)
    wait_for(lambda: cosigned_by(gd, 2, 2), "GD size 2 cosigned")
    honest = Checkpoint.parse(gd.checkpoint().decode().split("\n\n")[0] + "\n")
    lying = Checkpoint(
        honest.origin, honest.size, honest.root_hash, (render_extension(b"\x00" * 32),)
    )
    note = signed_checkpoint(lying, gd.keys.log_signer)
    body = AddCheckpointRequest(honest.size, (), note).render()
    r = requests.post(f"{mo.url}/add-checkpoint", data=body, timeout=10)
    assert r.status_code == 422
    assert r.json()["rule"] == "revocation_snapshot_mismatch"


def test_compact_station_knows_which_status_indices_were_anchored(world: World) -> None:
    """Format 2 snapshots carry the anchored index set (witness-re-derived like the
    revoked set): a compact station answers `index_anchored`, first from a snapshot,
    then from a delta that adds the new anchors."""
    gd = world.regions["GD"]
    gd.register_key()
    for i in (1, 2, 3):
        gd.anchor(i)
    wait_for(lambda: cosigned_by(gd, 4, 2), "GD size 4 cosigned by GD and MO")
    wait_for(lambda: cosigned_by(world.regions["MO"], 0, 2), "MO cosigned")
    station = _compact_station(world, "anchors", CountingSource)
    station.sync()
    state = SyncedTrustState(world.tmp / "anchors.db")
    try:
        assert not state.anchors_known("GD")
        assert [state.index_anchored("GD", i) for i in (1, 2, 3, 4)] == [True, True, True, False]
        gd.anchor(4)
        wait_for(lambda: cosigned_by(gd, 5, 2), "GD size 5 cosigned")
        before = CountingSource.deltas
        station.sync("GD")
        assert CountingSource.deltas > before
        assert state.index_anchored("GD", 4) is True
    finally:
        state.close()
