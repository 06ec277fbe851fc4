"""Liveness and abuse resistance of joint operation, over real HTTP on 127.0.0.1 with
two regions (GD, MO) each running a node, a witness and a validating mirror.

Scenarios: a quiet region stays fresh at stations because its checkpoint is cosigned
again on a timer (and turns `revocation_unknown` only once every source is down for
longer than the station's max age); a replayed old view never moves a station back or
becomes a fresh station's first view; a replayed or stripped checkpoint never worsens
what a mirror serves.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from credential.claims import HealthClaims, StatusColour
from credential.issue import credential_digest, sign_credential
from credential.keys import SigningAlg, generate_private_key, public_key_der
from credential.presentation import make_presentation
from credential.verdict import Decision, Reason, StationPolicy
from credential.verify import verify_presentation
from ledger.clients.sync import HttpLogSource, RegionStatus, SyncClient, SyncedTrustState
from ledger.joint.mirror import origin_hash
from ledger.joint.witness import AddCheckpointRequest
from ledger.log.checkpoint import CosignatureVerifier, open_checkpoint
from ledger.log.entries import CredentialAnchored, CredentialRevoked, RevocationReason
from ledger.log.note import NoteVerifier, SignedNote
from tests.support.joint_world import (
    Region,
    World,
    build_world,
    cosigned_by,
    shutdown,
    wait_for,
)

MAX_AGE_S = 3  # seconds; the stations' max sync age in these scenarios
INTERVAL_S = 0.5  # seconds; the nodes' checkpoint interval in these scenarios


@pytest.fixture
def live(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path, [("GD", False), ("MO", False)], "all", INTERVAL_S)
    try:
        yield w
    finally:
        shutdown(w)


def credential_of(region: Region, status_index: int, now: int) -> tuple[str, object]:
    """A GREEN credential signed by the region's registered key, anchored on its log."""
    device = generate_private_key()
    claims = HealthClaims(
        region=region.keys.id, kid=region.kid, status_index=status_index,
        issued_at=now - 60, not_before=now - 60, expires_at=now + 86_400,
        colour=StatusColour.GREEN,
        masked_name="C** T** M**", document_hint="**1234", holder_key=public_key_der(device),
    )  # fmt: skip
    jws = sign_credential(claims, region.issuer_key, SigningAlg.ES256)  # type: ignore[arg-type]
    region.submit(
        CredentialAnchored(region.keys.id, credential_digest(jws), status_index, region.kid,
                           now + 86_400)
    )  # fmt: skip
    return jws, device


def cosigned_at(note: bytes, world: World, region: str) -> list[int]:
    """The cosignature timestamps on a served checkpoint of `region`, by witness name."""
    member = world.consortium.member(region)
    opened = open_checkpoint(
        note,
        NoteVerifier.from_vkey(member.log.text),  # type: ignore[union-attr]
        [CosignatureVerifier.from_vkey(m.witness.text) for m in world.consortium.members],
    )
    return [opened.cosignatures[name] for name in sorted(opened.cosignatures)]


def test_idle_region_stays_admitted_for_three_max_ages(live: World) -> None:
    mo = live.regions["MO"]
    mo.register_key()
    now = int(time.time())
    jws, device = credential_of(mo, 7, now)
    wait_for(lambda: cosigned_by(mo, 2, 2), "MO size 2 cosigned by both")
    client, state = live.station()
    client.max_age_s = MAX_AGE_S
    policy = StationPolicy(max_sync_age_s=MAX_AGE_S)
    start = time.time()
    checks = 0
    # MO stays idle (no new entry) for three max ages; every sync keeps it admitted.
    while time.time() - start < 3 * MAX_AGE_S:
        report = client.sync("MO")
        r = report.region("MO")
        assert r.status is not RegionStatus.FAILED, r.errors
        assert r.new_size == 2
        t = time.time()
        verdict = verify_presentation(make_presentation(jws, device, int(t)), state, t, policy)
        assert verdict.decision is Decision.ADMIT, (verdict.reasons, verdict.sync_age_s)
        assert verdict.sync_age_s is not None and verdict.sync_age_s <= MAX_AGE_S
        checks += 1
        time.sleep(0.7)
    assert checks >= 6


def test_idle_region_with_every_source_down_is_unknown_right_after_max_age(
    live: World,
) -> None:
    mo, gd = live.regions["MO"], live.regions["GD"]
    mo.register_key()
    now = int(time.time())
    jws, device = credential_of(mo, 8, now)
    wait_for(lambda: cosigned_by(mo, 2, 2), "MO size 2 cosigned by both")
    client, state = live.station()
    assert client.sync("MO").region("MO").status is RegionStatus.UPDATED
    mo.server.stop()
    gd.server.stop()  # GD serves MO's mirror: every source of MO is now down
    assert client.sync("MO").region("MO").status is RegionStatus.FAILED
    synced = state.synced_at("MO")
    assert synced is not None and synced >= now - 1
    policy = StationPolicy(max_sync_age_s=MAX_AGE_S)

    def at(t: int):  # type: ignore[no-untyped-def]
        return verify_presentation(make_presentation(jws, device, t), state, t, policy)

    assert at(synced + MAX_AGE_S).decision is Decision.ADMIT
    late = at(synced + MAX_AGE_S + 1)
    assert late.decision is Decision.DENY and Reason.REVOCATION_UNKNOWN in late.reasons


class Replayer:
    """A source answering at a region's URL with one recorded (validly cosigned) note."""

    def __init__(self, note: bytes, real: HttpLogSource) -> None:
        self.note = note
        self.real = real
        self.name = "replayer"

    def checkpoint(self) -> bytes:
        return self.note

    def entry_bundle(self, index: int, width: int) -> bytes:
        return self.real.entry_bundle(index, width)


def test_old_cosigned_view_first_in_line_never_rolls_a_station_back(live: World) -> None:
    gd = live.regions["GD"]
    gd.register_key()
    gd.anchor(3)
    wait_for(lambda: cosigned_by(gd, 2, 2), "GD size 2 cosigned")
    old_note = gd.checkpoint()
    gd.submit(CredentialRevoked("GD", 3, RevocationReason.FRAUD, 1_700_000_000))
    wait_for(lambda: cosigned_by(gd, 3, 2), "GD size 3 cosigned")
    real = HttpLogSource(gd.url)
    mirror = HttpLogSource(f"{live.regions['MO'].url}/mirror/{origin_hash(gd.keys.origin)}")
    sources = {"GD": [Replayer(old_note, real), real, mirror], "MO": []}
    path = live.tmp / "rollback.db"
    client = SyncClient(live.consortium, path, sources=lambda r: sources[r])
    live.stations.append(client)
    r = client.sync("GD").region("GD")
    # The replayer answered first, but the largest cosigned view wins.
    assert r.status is RegionStatus.UPDATED and r.new_size == 3
    assert SyncedTrustState(path).is_revoked("GD", 3)
    # Only the replayer answers now: the station keeps size 3 (never moves back).
    sources["GD"] = [Replayer(old_note, real)]
    r = client.sync("GD").region("GD")
    assert r.new_size == 3 and SyncedTrustState(path).tree_size("GD") == 3
    assert SyncedTrustState(path).is_revoked("GD", 3)


def test_fresh_station_refuses_a_view_older_than_its_max_age(live: World) -> None:
    gd = live.regions["GD"]
    gd.register_key()
    wait_for(lambda: cosigned_by(gd, 1, 2), "GD size 1 cosigned")
    old_note = gd.checkpoint()
    real = HttpLogSource(gd.url)
    path = live.tmp / "fresh.db"
    client = SyncClient(
        live.consortium, path, sources=lambda r: [Replayer(old_note, real)],
        clock=lambda: time.time() + MAX_AGE_S + 5, max_age_s=MAX_AGE_S,
    )  # fmt: skip
    live.stations.append(client)
    r = client.sync("GD").region("GD")
    assert r.status is RegionStatus.FAILED and "older than" in r.errors[0]
    assert SyncedTrustState(path).tree_size("GD") == 0


def _mirror_note(world: World, of: str, at: str) -> bytes:
    url = f"{world.regions[at].url}/mirror/{origin_hash(world.regions[of].keys.origin)}"
    return requests.get(f"{url}/checkpoint", timeout=5).content


def test_replayed_or_stripped_checkpoint_never_worsens_the_mirror(live: World) -> None:
    gd, mo = live.regions["GD"], live.regions["MO"]
    gd.register_key()
    wait_for(lambda: cosigned_by(gd, 1, 2), "GD size 1 cosigned")
    wait_for(lambda: len(SignedNote.parse(_mirror_note(live, "GD", "MO")).signatures) == 3,
             "MO's mirror of GD serves both cosignatures")  # fmt: skip
    served = _mirror_note(live, "GD", "MO")
    note = gd.checkpoint()
    stripped = SignedNote.parse(note)
    stripped = SignedNote(stripped.text, stripped.signatures[:1]).render()  # log sig only
    for body in (note, stripped):
        r = requests.post(
            f"{mo.url}/add-checkpoint",
            data=AddCheckpointRequest(1, (), body).render(),
            timeout=5,
        )
        assert r.status_code == 200
        after = _mirror_note(live, "GD", "MO")
        sigs = SignedNote.parse(after).signatures
        names = [s.name for s in sigs]
        assert len(names) == len(set(names)) == 3, names  # one per key, none stripped
        # No cosignature got older than what was served before the replay.
        assert all(
            a >= b
            for a, b in zip(
                cosigned_at(after, live, "GD"), cosigned_at(served, live, "GD"), strict=True
            )
        )
    # GD down: a fresh station still syncs GD from MO's mirror with both cosignatures.
    gd.server.stop()
    client, _ = live.station("after-replay")
    assert client.sync("GD").region("GD").new_size == 1


def test_own_cosignature_is_served_while_a_peer_witness_hangs(tmp_path: Path) -> None:
    import socket
    import threading

    from ledger.joint.api import CosignatureCollector
    from ledger.joint.witness import Witness, WitnessStore
    from tests.support.ledger_joint import MemoryLog, consortium_of, member_keys

    blackhole = socket.socket()  # accepts connections, never answers
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(8)
    try:
        gd = member_keys("GD")
        mo = member_keys("MO", blackhole.getsockname()[1])
        consortium = consortium_of(gd, mo)
        witness = Witness(consortium, gd.witness_signer,
                          WitnessStore.open(f"sqlite:///{tmp_path / 'w.db'}"))  # fmt: skip
        stored: list[tuple[int, list[str]]] = []
        collector = CosignatureCollector(
            consortium, "GD", local=witness, timeout=3.0,
            store_lines=lambda size, lines: stored.append((size, list(lines))),
        )  # fmt: skip
        log = MemoryLog(gd)
        log.leaves.append(b"a")
        t = threading.Thread(target=collector, args=(log.signed(),), daemon=True)
        t.start()
        wait_for(lambda: stored, "GD's own cosignature stored", timeout=2.0)
        assert t.is_alive()  # still waiting on MO's witness
        assert stored[0][0] == 1 and len(stored[0][1]) == 1
        t.join(10)
    finally:
        blackhole.close()
