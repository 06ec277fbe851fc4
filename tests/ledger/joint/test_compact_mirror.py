"""Compact sync through a validating mirror, over real HTTP on 127.0.0.1: MO's mirror
keeps the revocation snapshots it re-derived while validating GD's log and serves them
(and XOR deltas) under `/mirror/<hex SHA-256(origin)>/revocation/...`. With GD's node
down, a fresh compact station syncs GD's revocation state from MO; a mirror serving
bytes that do not hash to the cosigned digest is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask, Response

from ledger.clients.sync import (
    HttpLogSource,
    RegionStatus,
    SyncClient,
    SyncedTrustState,
)
from ledger.joint.api import make_engine
from ledger.joint.mirror import MirroredSnapshot, MirrorStore, origin_hash
from ledger.log.checkpoint import Checkpoint
from ledger.log.entries import CredentialReinstated, CredentialRevoked, RevocationReason
from ledger.log.revocation import RevocationDelta, RevocationSnapshot, find_extension
from tests.support.joint_world import (
    Server,
    World,
    build_world,
    cosigned_by,
    mirror_of,
    shutdown,
    wait_for,
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path, [("GD", False), ("MO", False)], "all")
    try:
        yield w
    finally:
        shutdown(w)


def _digest(note: bytes) -> bytes:
    cp = Checkpoint.parse(note.decode().split("\n\n")[0] + "\n")
    d = find_extension(cp.extensions)
    assert d is not None
    return d


def _gd_with_a_revocation(world: World) -> bytes:
    """GD: key, two anchors, revoke 1; cosigned by GD and MO. Returns the digest."""
    gd = world.regions["GD"]
    gd.register_key()
    gd.anchor(1)
    gd.anchor(2)
    gd.submit(CredentialRevoked("GD", 1, RevocationReason.FRAUD, 1_700_000_000))
    wait_for(lambda: cosigned_by(gd, 4, 2), "GD size 4 cosigned by GD and MO")
    return _digest(gd.checkpoint())


def _compact(world: World, name: str, sources=None) -> SyncClient:  # type: ignore[no-untyped-def]
    client = SyncClient(world.consortium, world.tmp / f"{name}.db", compact=True, sources=sources)
    world.stations.append(client)
    return client


def test_gd_down_compact_station_syncs_revocations_from_mo_mirror(world: World) -> None:
    gd = world.regions["GD"]
    digest = _gd_with_a_revocation(world)
    gd.server.stop()  # 503 for everything from now on
    station = _compact(world, "fresh")
    report = station.sync("GD").region("GD")
    assert report.status is RegionStatus.UPDATED and report.new_size == 4
    assert report.source == mirror_of(world, "GD", at="MO")
    assert any("503" in e for e in report.errors)  # the node was tried first
    state = SyncedTrustState(world.tmp / "fresh.db")
    try:
        assert state.is_revoked("GD", 1) and not state.is_revoked("GD", 2)
        assert state.key("GD", gd.kid) is not None

        # GD back: revoke 2, reinstate 1; MO cosigns; GD down again. The station moves
        # by a delta served by MO's mirror.
        gd.server.start()
        gd.submit(
            CredentialRevoked("GD", 2, RevocationReason.FRAUD, 1_700_000_100),
            CredentialReinstated("GD", 1, 1_700_000_200),
        )
        wait_for(lambda: cosigned_by(gd, 6, 2), "GD size 6 cosigned")
        new_digest = _digest(gd.checkpoint())
        gd.server.stop()
        delta = requests.get(
            f"{mirror_of(world, 'GD', at='MO')}/revocation/delta/{digest.hex()}/{new_digest.hex()}",
            timeout=5,
        )
        assert delta.status_code == 200 and "immutable" in delta.headers["Cache-Control"]
        parsed = RevocationDelta.from_bytes(delta.content)
        assert parsed.to_digest == new_digest and parsed.flipped == frozenset({1, 2})
        again = station.sync("GD").region("GD")
        assert again.status is RegionStatus.UPDATED and again.new_size == 6
        assert again.source == mirror_of(world, "GD", at="MO")
        assert state.is_revoked("GD", 2) and not state.is_revoked("GD", 1)
    finally:
        state.close()


def test_mirror_snapshot_urls_match_the_node_and_refuse_garbage(world: World) -> None:
    gd = world.regions["GD"]
    digest = _gd_with_a_revocation(world)
    prefix = mirror_of(world, "GD", at="MO")
    from_mirror = requests.get(f"{prefix}/revocation/snapshot/{digest.hex()}", timeout=5)
    from_node = requests.get(f"{gd.url}/revocation/snapshot/{digest.hex()}", timeout=5)
    assert from_mirror.status_code == 200 and from_mirror.content == from_node.content
    assert hashlib.sha256(from_mirror.content).digest() == digest
    assert "immutable" in from_mirror.headers["Cache-Control"]
    assert from_mirror.headers["Cache-Control"] == from_node.headers["Cache-Control"]
    for path, status in [
        (f"{prefix}/revocation/snapshot/zz", 400),
        (f"{prefix}/revocation/snapshot/{'00' * 32}", 404),
        (f"{prefix}/revocation/delta/{digest.hex()}/nothex", 400),
        (f"{prefix}/revocation/delta/{'00' * 32}/{digest.hex()}", 404),
        (f"{world.regions['MO'].url}/mirror/{'ab' * 32}/revocation/snapshot/{digest.hex()}", 404),
        (f"{world.regions['MO'].url}/mirror/zz/revocation/delta/{digest.hex()}/{digest.hex()}",
         404),
    ]:  # fmt: skip
        r = requests.get(path, timeout=5)
        assert r.status_code == status, path
        assert r.json()["error"] in ("bad_request", "not_found")


def test_mirror_serving_a_snapshot_that_misses_the_digest_is_refused(world: World) -> None:
    """A rogue mirror relays the genuine cosigned checkpoint but serves the older
    snapshot (from before the revocation) under the new digest, hoping to hide it."""
    gd = world.regions["GD"]
    gd.register_key()
    gd.anchor(1)
    wait_for(lambda: cosigned_by(gd, 2, 2), "GD size 2 cosigned")
    stale = requests.get(
        f"{gd.url}/revocation/snapshot/{_digest(gd.checkpoint()).hex()}", timeout=5
    ).content
    gd.submit(CredentialRevoked("GD", 1, RevocationReason.FRAUD, 1_700_000_000))
    wait_for(lambda: cosigned_by(gd, 3, 2), "GD size 3 cosigned")
    genuine = mirror_of(world, "GD", at="MO")
    rogue_app = Flask("rogue-mirror")

    @rogue_app.get("/checkpoint")
    def checkpoint() -> Response:
        return Response(requests.get(f"{genuine}/checkpoint", timeout=5).content)

    @rogue_app.get("/revocation/snapshot/<digest>")
    def snapshot(digest: str) -> Response:
        return Response(stale)

    rogue = Server(rogue_app)
    rogue.start()
    try:
        gd.server.stop()
        station = _compact(
            world,
            "lied-to",
            sources=lambda region: [HttpLogSource(gd.url), HttpLogSource(rogue.url)],
        )
        report = station.sync("GD").region("GD")
        assert report.status is RegionStatus.FAILED
        assert any(rogue.url in e and "digest mismatch" in e for e in report.errors)
        state = SyncedTrustState(world.tmp / "lied-to.db")
        try:
            assert "GD" not in state.regions() and not state.is_revoked("GD", 1)
        finally:
            state.close()
        # With the honest mirror listed after the rogue one, the station gets the truth.
        honest = _compact(
            world,
            "honest",
            sources=lambda region: [HttpLogSource(rogue.url), HttpLogSource(genuine)],
        )
        rep = honest.sync("GD").region("GD")
        assert rep.status is RegionStatus.UPDATED and rep.source == genuine
        assert any("digest mismatch" in e for e in rep.errors)
        state = SyncedTrustState(world.tmp / "honest.db")
        try:
            assert state.is_revoked("GD", 1)
        finally:
            state.close()
    finally:
        rogue.close()


def _snap(size: int, revoked: set[int]) -> MirroredSnapshot:
    data = RevocationSnapshot("GD", size, frozenset(revoked), ()).to_bytes()
    return MirroredSnapshot(hashlib.sha256(data).digest(), size, data)


def test_mirror_store_keeps_the_last_n_snapshots_per_origin(tmp_path: Path) -> None:
    store = MirrorStore(make_engine(f"sqlite:///{tmp_path / 'm.db'}"), keep_snapshots=3)
    snaps = [_snap(n, {n}) for n in range(1, 6)]
    for s in snaps:
        store.append("gd/log", 0, [], {}, b"note", s.tree_size, snapshot=s)
        store.append("gd/log", 0, [], {}, b"note", s.tree_size, snapshot=s)  # idempotent
    store.append("mo/log", 0, [], {}, b"note", 1, snapshot=snaps[0])
    kept = [s for s in snaps if store.revocation_snapshot("gd/log", s.digest) is not None]
    assert kept == snaps[2:]
    assert store.revocation_snapshot("mo/log", snaps[0].digest) == snaps[0].data
    delta = store.revocation_delta("gd/log", snaps[2].digest, snaps[4].digest)
    assert delta is not None and RevocationDelta.from_bytes(delta).flipped == frozenset({3, 5})
    assert store.revocation_delta("gd/log", snaps[4].digest, snaps[2].digest) is None
    assert store.revocation_delta("gd/log", snaps[0].digest, snaps[4].digest) is None
    assert origin_hash("gd/log") == hashlib.sha256(b"gd/log").hexdigest()
