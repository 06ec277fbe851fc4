"""Joint operation over real HTTP on 127.0.0.1: two regions (and a witness-only member)
each running a ledger node with witness + validating mirror; a station syncing.

Scenarios: (a) GD appends, MO validates and cosigns, a station sees the entry;
(b) MO down: quorum not met, the station keeps its state and says how stale; MO back,
catches up; (c) GD down: the station syncs GD from MO's mirror; (d) fork: MO refuses
and keeps the evidence, the station refuses too; (e) rule-breaking GD entries: MO
refuses naming the rule; (f) a witness-only third member with a 2-of-3 policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask, Response

from credential.keys import SigningAlg, generate_private_key, key_id, public_key_der
from ledger.clients.sync import HttpLogSource, RegionStatus, SyncClient
from ledger.joint.witness import AddCheckpointRequest
from ledger.log.entries import (
    CredentialAnchored,
    CredentialRevoked,
    KeyAdded,
    RevocationReason,
    sign_key_entry,
)
from ledger.log.tiles import encode_entry_bundle
from tests.support.joint_world import (
    Server,
    World,
    build_world,
    cosigned_by,
    shutdown,
    wait_for,
)
from tests.support.ledger_joint import (
    MemoryLog,
    MemorySource,
    leaf_of,
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path, [("GD", False), ("MO", False)], "all")
    try:
        yield w
    finally:
        shutdown(w)


def test_a_gd_appends_mo_cosigns_station_sees_it(world: World) -> None:
    gd = world.regions["GD"]
    gd.register_key()
    gd.anchor(1)
    gd.submit(CredentialRevoked("GD", 1, RevocationReason.FRAUD, 1_700_000_000))
    wait_for(lambda: cosigned_by(gd, 3, 2), "GD size 3 cosigned by GD and MO")
    client, state = world.station()
    report = client.sync()
    assert report.region("GD").status is RegionStatus.UPDATED
    assert report.region("GD").new_size == 3
    assert state.is_revoked("GD", 1)
    assert state.key("GD", gd.kid) is not None
    status = requests.get(f"{world.regions['MO'].url}/v1/witness/status", timeout=5).json()
    sizes = {x["origin"]: x["size"] for x in status["logs"]}
    assert sizes[gd.keys.origin] == 3 and status["alarms"] == 0


def test_b_mo_down_quorum_unmet_then_catches_up(world: World) -> None:
    gd, mo = world.regions["GD"], world.regions["MO"]
    gd.register_key()
    wait_for(lambda: cosigned_by(gd, 1, 2), "size 1 cosigned")
    client, state = world.station()
    assert client.sync("GD").region("GD").new_size == 1
    mo.server.stop()
    gd.anchor(5)
    gd.anchor(6)
    wait_for(lambda: b"\n3\n" in gd.checkpoint(), "GD sequenced size 3")
    r = client.sync("GD").region("GD")
    assert r.status is RegionStatus.FAILED and r.new_size == 1
    assert any("quorum" in e for e in r.errors)
    assert r.synced_at is not None and state.synced_at("GD") == r.synced_at
    assert state.tree_size("GD") == 1
    mo.server.start()
    wait_for(lambda: cosigned_by(gd, 3, 2), "MO catches up and cosigns size 3")
    assert client.sync("GD").region("GD").new_size == 3


def test_c_gd_down_station_syncs_from_mo_mirror(world: World) -> None:
    gd, _mo = world.regions["GD"], world.regions["MO"]
    gd.register_key()
    assert gd.writer is not None
    entries = [CredentialAnchored("GD", i.to_bytes(32, "big"), i, gd.kid, 4_000_000_000)
               for i in range(1, 700)]  # fmt: skip
    gd.submit(*entries)  # more than two entry bundles: full and partial tiles mirrored
    wait_for(lambda: cosigned_by(gd, gd.writer.size(), 2), "GD cosigned")
    size = gd.writer.size()
    gd.server.stop()
    client, state = world.station()
    r = client.sync("GD").region("GD")
    assert r.status is RegionStatus.UPDATED and r.new_size == size
    assert "/mirror/" in (r.source or "")
    assert state.anchored_at("GD", (650).to_bytes(32, "big")) is not None


def test_d_fork_refused_by_witness_and_station(world: World) -> None:
    gd, mo = world.regions["GD"], world.regions["MO"]
    gd.register_key()
    gd.anchor(1)
    wait_for(lambda: cosigned_by(gd, 2, 2), "size 2 cosigned")
    client, state = world.station()
    client.sync("GD")
    # GD's node signs another root for size 2 (as a compromised node would).
    forged = MemoryLog(
        gd.keys, [leaf_of(CredentialRevoked("GD", 9, RevocationReason.FRAUD, 1))] * 2
    )
    body = AddCheckpointRequest(2, (), forged.signed()).render()
    r = requests.post(f"{mo.url}/add-checkpoint", data=body, timeout=5)
    assert r.status_code == 409 and r.json()["error"] == "fork"
    alarms = requests.get(f"{mo.url}/v1/alarms", timeout=5).json()
    assert alarms["count"] == 1 and alarms["alarms"][0]["kind"] == "same_size_other_root"
    # A station shown the forked checkpoint (cosigned only by GD) refuses it.
    fork_client = SyncClient(
        world.consortium,
        world.tmp / "station.db",
        sources=lambda region: [MemorySource(forged, [gd.keys])],
    )
    world.stations.append(fork_client)
    rep = fork_client.sync("GD").region("GD")
    assert rep.status is RegionStatus.FAILED and state.tree_size("GD") == 2
    assert not state.is_revoked("GD", 9)


def test_e_rule_breaking_entries_are_refused_with_the_rule(tmp_path: Path) -> None:
    w = build_world(tmp_path, [("GD", False), ("MO", False)], "all")
    try:
        gd, mo = w.regions["GD"], w.regions["MO"]
        # GD's node turns rogue: it serves a log whose first entry adds a key for MO.
        mo_key = generate_private_key()
        der = public_key_der(mo_key)
        bad = sign_key_entry(
            KeyAdded("MO", key_id(der), SigningAlg.ES256, der, 0, None), gd.keys.root_key
        )
        rogue = MemoryLog(gd.keys, [leaf_of(bad)])
        app = Flask("rogue")

        @app.get("/tile/entries/<int:n>.p/<int:width>")
        def bundle(n: int, width: int) -> Response:
            return Response(encode_entry_bundle(rogue.leaves[n * 256 : n * 256 + width]))

        # The rogue log is served on its own fresh port and MO's mirror reads GD's log
        # from there: no stopping GD and re-binding its port.
        rogue_server = Server(app)
        rogue_server.start()
        mo.joint.mirror.source_for = lambda member: HttpLogSource(rogue_server.url)
        try:
            body = AddCheckpointRequest(0, (), rogue.signed()).render()
            r = requests.post(f"{mo.url}/add-checkpoint", data=body, timeout=10)
            assert r.status_code == 422
            assert r.json()["error"] == "rule_violation" and r.json()["rule"] == "wrong_region"
            # GD revoking a credential it never anchored is refused too.
            rogue.leaves[0] = leaf_of(CredentialRevoked("GD", 77, RevocationReason.FRAUD, 1))
            body = AddCheckpointRequest(0, (), rogue.signed()).render()
            r = requests.post(f"{mo.url}/add-checkpoint", data=body, timeout=10)
            assert r.status_code == 422 and r.json()["rule"] == "not_anchored"
        finally:
            rogue_server.close()
    finally:
        shutdown(w)


def test_f_witness_only_member_two_of_three(tmp_path: Path) -> None:
    w = build_world(tmp_path, [("GD", False), ("MO", False), ("OBS", True)], 2)
    try:
        gd, mo = w.regions["GD"], w.regions["MO"]
        mo.server.stop()
        gd.register_key()
        wait_for(lambda: cosigned_by(gd, 1, 2), "GD cosigned by GD and OBS")
        client, state = w.station()
        r = client.sync("GD").region("GD")
        assert r.status is RegionStatus.UPDATED and r.new_size == 1
        assert state.key("GD", gd.kid) is not None
    finally:
        shutdown(w)


@pytest.mark.parametrize(
    "body",
    [b"", b"\xff" * 40, b"old 0\n\n", b"old 0\n\nnot a note\n", b"old 99999999999999999999\n\nx",
     b"old " + b"9" * 4301 + b"\n\nx"],
)  # fmt: skip
def test_garbage_add_checkpoint_bodies_get_4xx_json(world: World, body: bytes) -> None:
    r = requests.post(f"{world.regions['MO'].url}/add-checkpoint", data=body, timeout=5)
    assert 400 <= r.status_code < 500
    assert "error" in r.json()


@pytest.mark.parametrize(
    "path",
    [
        "mirror/zz/checkpoint",
        "mirror/zz/tile/0/000",
        "mirror/" + "0" * 64 + "/tile/../../etc",
        "v1/alarms",
    ],
)
def test_mirror_paths_never_500(world: World, path: str) -> None:
    r = requests.get(f"{world.regions['MO'].url}/{path}", timeout=5)
    assert r.status_code in (200, 404)
