"""A shard rollover, end to end over real HTTP on 127.0.0.1.

GD shards its log (period 1 h, the shortest the schedule allows; its epoch is chosen so
that shard 0 ends 100 s after the test starts, and the clock of GD's issuer and node is
moved forward instead of sleeping); MO runs an unsharded log and witnesses GD's. GD's
issuer issues one credential expiring in shard 0 and, 50 s later, one expiring in
shard 1; its anchor worker sends each to its shard. When shard 0's period is over the
node freezes it: its final checkpoint carries the frozen line, MO cosigns it, and
any growth is refused (by the node with 409, by MO's witness with 409 and evidence).
A full and a compact station, syncing every tracked shard, admit both credentials;
once shard 0 is droppable they drop its state, MO's mirror stops mirroring it and
the node stops serving it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from credential.issue import read_claims_unverified
from credential.presentation import make_presentation
from credential.verify import check_presentation
from issuer import anchor
from issuer.admin.accounts import Role
from issuer.admin.services import Actor, AdminService, EntryState
from issuer.context import IssuerContext
from issuer.ledger_state import ConsortiumCheckpoints
from issuer.testing import enrol_directly, make_context, new_device
from ledger.clients.client import LedgerResponseError
from ledger.clients.sync import RegionStatus, SyncClient, SyncedTrustState, mirror_prefix
from ledger.joint.api import JointServices
from ledger.joint.witness import AddCheckpointRequest
from ledger.log.checkpoint import (
    Checkpoint,
    CosignatureVerifier,
    open_checkpoint,
    signed_checkpoint,
)
from ledger.log.consortium import Consortium, build_consortium, write_consortium
from ledger.log.entries import (
    CredentialAnchored,
    TimestampedEntry,
    encode_entry,
    encode_leaf,
    root_public_key_bytes,
)
from ledger.log.merkle import consistency_path, leaf_hash, root_hash
from ledger.log.note import NoteSigner
from ledger.log.shards import find_frozen
from ledger.log.tiles import decode_entry_bundle
from ledger.node.app import EXTENSION_KEY, create_app
from ledger.node.config import NodeConfig
from ledger.node.sharding import SHARDED_KEY, ShardedNode, create_sharded_app
from tests.support.joint_world import Server, wait_for
from tests.support.ledger_joint import MemberKeys, member_keys, write_key
from verifier.syncing import LedgerSyncer, sync_ages

pytestmark = pytest.mark.slow

PERIOD_S = 3_600  # ledger.log.shards.MIN_PERIOD_S
VALIDITY_S = 60  # the issuer's credential validity in this test
GRACE_S = 120  # after its end, a shard is droppable once this has passed
# Seconds after the test starts: shard 0's end (a credential issued in the first
# END0_S - VALIDITY_S seconds expires in it), the issuer's clock when it issues the
# second credential (expiring in shard 1), and the clocks once shard 0 is frozen. The
# largest offset stays inside the writers' authentication window (AUTH_WINDOW_S).
END0_S = 100
SECOND_ISSUE_S = 50
ROLLED_S = 120
ADMIN = Actor("admin", "GD", frozenset({Role.OPERATOR}))


@dataclass
class OffsetClock:
    """Real time plus an offset the test moves forward: the issuer's and the node's
    clock (writers sign with real time, so offsets stay inside the auth window)."""

    offset: float = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def __call__(self) -> float:
        return self.now()


@dataclass
class World:
    t0: int
    clock: OffsetClock
    consortium: Consortium
    gd: MemberKeys
    mo: MemberKeys
    issuer: IssuerContext
    port: anchor.ClientLedgerPort
    gd_node: ShardedNode
    mo_joint: JointServices
    servers: list[Server] = field(default_factory=list)
    joints: list[JointServices] = field(default_factory=list)
    stations: list[SyncClient] = field(default_factory=list)

    @property
    def gd_url(self) -> str:
        return f"http://127.0.0.1:{self.gd.port}"

    @property
    def mo_url(self) -> str:
        return f"http://127.0.0.1:{self.mo.port}"

    def shard_note(self, k: int) -> bytes:
        r = requests.get(f"{self.gd_url}/{k}/checkpoint", timeout=5)
        assert r.status_code == 200, r.text
        return r.content

    def shard_checkpoint(self, k: int) -> Checkpoint:
        origin = f"{self.gd.origin}/{k}"
        verifier = NoteSigner(origin, self.gd.log_signer.private_key).verifier()
        return open_checkpoint(self.shard_note(k), verifier).checkpoint

    def cosigned(self, k: int, size: int, frozen: bool = False) -> bool:
        note = self.shard_note(k)
        cp = self.shard_checkpoint(k)
        lines = note.decode().split("\n\n", 1)[1]
        done = cp.size == size and lines.count("\u2014 ") >= 3  # GD's log + 2 witnesses
        return done and (find_frozen(cp.extensions) is not None) == frozen

    def cosigned_at(self, k: int) -> int:
        """MO's cosignature time on shard k's served checkpoint (C2SP tlog-cosignature)."""
        origin = f"{self.gd.origin}/{k}"
        verifier = NoteSigner(origin, self.gd.log_signer.private_key).verifier()
        witnesses = [CosignatureVerifier.from_vkey(m.witness.text) for m in self.consortium.members]
        opened = open_checkpoint(self.shard_note(k), verifier, witnesses)
        return opened.cosignatures.get(self.mo.witness_signer.name, 0)

    def station(self, name: str, compact: bool) -> tuple[SyncClient, SyncedTrustState]:
        client = SyncClient(self.consortium, self.tmp / f"{name}.db", clock=self.clock,
                            compact=compact)  # fmt: skip
        self.stations.append(client)
        return client, SyncedTrustState(self.tmp / f"{name}.db")

    tmp: Path = Path()


def _node_config(k: MemberKeys, folder: Path, writers: tuple[bytes, ...], hook=None) -> NodeConfig:  # type: ignore[no-untyped-def]
    lkey = write_key(folder / "log.skey", k.log_signer.skey())
    return NodeConfig(
        region=k.id, origin=k.origin, log_key_file=lkey,
        database_url=f"sqlite:///{folder / 'node.db'}", root_public_key=k.root_public_raw(),
        writer_public_keys=writers, max_batch_delay_s=0.02, cosign_hook=hook,
        checkpoint_interval_s=2.0,
    )  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    t0 = int(time.time())
    clock = OffsetClock()
    issuer = make_context(tmp_path, "GD", clock=clock, credential_validity_s=VALIDITY_S,
                          refresh_before_s=0)  # fmt: skip
    servers = [Server(), Server()]
    gd = dataclasses.replace(member_keys("GD", servers[0].port), root_key=issuer.keys.root_key())
    mo = member_keys("MO", servers[1].port)
    gd_table = gd.table()
    # Shard 0 covers the expiries up to t0 + END0_S: the rollover falls inside the test.
    gd_table["shards"] = {"period_s": PERIOD_S, "epoch": t0 + END0_S - PERIOD_S,
                          "grace_s": GRACE_S, "max_validity_s": PERIOD_S}  # fmt: skip
    consortium = build_consortium([gd_table, mo.table()], threshold="all")
    consortium_path = tmp_path / "consortium.toml"
    write_consortium(consortium_path, consortium)
    issuer.config = issuer.config.replace(consortium_path=consortium_path,
                                          ledger_url=f"http://127.0.0.1:{gd.port}")  # fmt: skip
    joints: list[JointServices] = []
    w: World | None = None
    try:
        folders = {}
        for k in (gd, mo):
            folders[k.id] = tmp_path / f"{k.id}-node"
            folders[k.id].mkdir()
        wkeys = {k.id: write_key(folders[k.id] / "witness.skey", k.witness_signer.skey())
                 for k in (gd, mo)}  # fmt: skip
        gd_db, mo_db = (
            f"sqlite:///{folders['GD'] / 'joint.db'}",
            f"sqlite:///{folders['MO'] / 'node.db'}",
        )
        gd_joint = JointServices.open(consortium, "GD", wkeys["GD"], gd_db, clock=clock)
        mo_joint = JointServices.open(consortium, "MO", wkeys["MO"], mo_db)
        joints += [gd_joint, mo_joint]
        writers = (gd.root_public_raw(), root_public_key_bytes(issuer.keys.writer_key()))
        plan = consortium.member("GD").shards
        assert plan is not None
        gd_app = create_sharded_app(
            _node_config(gd, folders["GD"], writers), plan,
            extra_blueprints=gd_joint.blueprints(), clock=clock,
            hooks=gd_joint.shard_hooks(), margin_s=0,
        )  # fmt: skip
        gd_joint.attach(gd_app, retry_interval_s=0.3)
        mo_config = _node_config(mo, folders["MO"], (mo.root_public_raw(),), mo_joint.collector)
        mo_app = create_app(mo_config, extra_blueprints=mo_joint.blueprints())
        mo_joint.attach(mo_app, retry_interval_s=0.3)
        servers[0].app, servers[1].app = gd_app, mo_app
        for s in servers:
            s.start()
        port = anchor.ClientLedgerPort(f"http://127.0.0.1:{gd.port}", issuer.keys.writer_key(), 10)
        w = World(t0, clock, consortium, gd, mo, issuer, port, gd_app.extensions[SHARDED_KEY],
                  mo_joint, servers, joints, tmp=tmp_path)  # fmt: skip
        yield w
    finally:
        for c in w.stations if w is not None else []:
            c.close()
        for j in joints:
            j.stop()
        for s in servers:
            s.close()
        if w is not None:
            w.gd_node.stop()
            mo_node = servers[1].app.extensions[EXTENSION_KEY] if servers[1].app else None  # type: ignore[union-attr]
            if mo_node is not None:
                mo_node.sequencer.stop()
                mo_node.store.dispose()
        issuer.dispose()


def test_issuance_across_a_rollover_is_verified_from_both_shards(world: World) -> None:
    w = world
    end0 = w.t0 + END0_S
    # The issuer's key entries (queued at set-up) go through the node's routing: every
    # shard gets them, so each validates alone.
    anchor.drain(w.issuer, w.port)
    shards = requests.get(f"{w.gd_url}/v1/shards", timeout=5).json()["shards"]
    assert [s["number"] for s in shards] == [0, 1]
    keys_in_shard = w.shard_checkpoint(0).size
    assert keys_in_shard >= 1 and w.shard_checkpoint(1).size == keys_in_shard

    # 1. Issue across the boundary: one credential expiring in shard 0, one in shard 1.
    d_old, d_new = new_device(), new_device()
    old = enrol_directly(w.issuer, "G10000001", d_old).issued
    w.clock.offset = SECOND_ISSUE_S
    new = enrol_directly(w.issuer, "G10000002", d_new).issued
    exp_old = read_claims_unverified(old.credential.jws).expires_at
    exp_new = read_claims_unverified(new.credential.jws).expires_at
    assert exp_old < end0 <= exp_new
    assert anchor.drain(w.issuer, w.port) == 2
    size0, size1 = keys_in_shard + 1, keys_in_shard + 1
    wait_for(lambda: w.cosigned(0, size0) and w.cosigned(1, size1),
             "both shards cosigned by GD's and MO's witnesses")  # fmt: skip
    # The issuer's console confirms each row against the shard it was anchored in.
    source = ConsortiumCheckpoints.from_context(w.issuer)
    service = AdminService(w.issuer)
    for issued in (old, new):
        status = service.entry_status(ADMIN, issued.outbox_id, source)
        assert status.state is EntryState.COSIGNED and status.log_index == keys_in_shard

    # 2. The rollover: shard 0's period ends; the node freezes it, MO cosigns the final
    #    checkpoint (same tree, frozen line); a new far shard opens, seeded with keys.
    w.clock.offset = ROLLED_S
    requests.get(f"{w.gd_url}/v1/shards", timeout=5)  # any request runs the lifecycle
    wait_for(lambda: w.cosigned(0, size0, frozen=True), "shard 0's final checkpoint cosigned")
    frozen_cp = w.shard_checkpoint(0)
    assert find_frozen(frozen_cp.extensions) == (0, end0)
    # Freshness goes on for the frozen shard: its final checkpoint is re-cosigned on
    # the timer (checkpoint_interval_s = 2 s here), never grown.
    first = w.cosigned_at(0)
    wait_for(lambda: w.cosigned_at(0) > first, "the frozen shard re-cosigned by MO")
    assert w.shard_checkpoint(0).size == size0
    shards = {
        s["number"]: s for s in requests.get(f"{w.gd_url}/v1/shards", timeout=5).json()["shards"]
    }
    assert shards[0]["frozen"] and shards[0]["state"] == "frozen"
    assert not shards[1]["frozen"] and 2 in shards
    wait_for(lambda: w.cosigned(2, keys_in_shard), "the new shard 2 cosigned")
    status = requests.get(f"{w.mo_url}/v1/witness/status", timeout=5).json()
    witnessed = {x["origin"]: x["size"] for x in status["logs"]}
    assert witnessed[f"{w.gd.origin}/0"] == size0 and witnessed[f"{w.gd.origin}/1"] == size1
    assert witnessed[f"{w.gd.origin}/2"] == keys_in_shard

    # 3. Growth of the frozen shard is refused by the node, at the shard's own endpoint
    #    and at the routing one (both authenticated as the issuer's writer) ...
    late = CredentialAnchored("GD", b"\x07" * 32, 999, old.credential.kid, end0 - 1)
    with pytest.raises(anchor.EntryRefusedError) as refused:
        w.port.submit_to_shard(0, [encode_entry(late)])
    assert refused.value.rule == "shard_frozen"
    with pytest.raises(LedgerResponseError) as routed:
        w.port.client.submit([encode_entry(late)])
    assert (routed.value.status, routed.value.code) == (409, "shard_frozen")
    assert w.shard_checkpoint(0).size == size0
    # ... and by MO's witness, which keeps the two signed notes as evidence.
    bundle = requests.get(f"{w.gd_url}/0/tile/entries/000.p/{size0}", timeout=5).content
    leaves = decode_entry_bundle(bundle)
    grown = [*leaves, encode_leaf(TimestampedEntry(int(time.time() * 1000), encode_entry(late)))]
    hashes = [leaf_hash(x) for x in grown]
    signer = NoteSigner(f"{w.gd.origin}/0", w.gd.log_signer.private_key)
    note = signed_checkpoint(Checkpoint(signer.name, len(grown), root_hash(hashes)), signer)
    proof = tuple(consistency_path(size0, hashes))
    add = AddCheckpointRequest(size0, proof, note).render()
    r = requests.post(f"{w.mo_url}/add-checkpoint", data=add, timeout=10)
    assert r.status_code == 409 and r.json()["error"] == "shard_frozen", r.text
    alarms = requests.get(f"{w.mo_url}/v1/alarms", timeout=5).json()["alarms"]
    assert [a["kind"] for a in alarms] == ["frozen_growth"]
    assert alarms[0]["origin"] == f"{w.gd.origin}/0"
    # A shard far beyond the plan is no log to the witness: nothing is kept for it.
    far = NoteSigner(f"{w.gd.origin}/9999", w.gd.log_signer.private_key)
    far_note = signed_checkpoint(Checkpoint(far.name, 0, root_hash([])), far)
    r = requests.post(f"{w.mo_url}/add-checkpoint",
                      data=AddCheckpointRequest(0, (), far_note).render(), timeout=10)  # fmt: skip
    assert r.status_code == 404 and r.json()["error"] == "unknown_log", r.text

    # 4. Full and compact stations sync every tracked shard and admit both credentials.
    for name, compact in (("full", False), ("compact", True)):
        client, trust = w.station(name, compact)
        report = client.sync("GD").region("GD")
        assert report.status is RegionStatus.UPDATED, report.errors
        assert [s.region for s in report.shards] == ["GD/0", "GD/1", "GD/2"]
        assert report.synced_at == min(s.synced_at for s in report.shards)  # type: ignore[type-var]
        assert trust.synced_at("GD") == report.synced_at
        for issued, device, at in ((old, d_old, exp_old - 20), (new, d_new, exp_new - 20)):
            qr = make_presentation(issued.credential.jws, device, at)
            vp = check_presentation(qr, trust, at)
            assert vp.claims.status_index == issued.credential.status_index
            if compact:
                assert trust.index_anchored("GD", issued.credential.status_index) is True
            else:
                assert trust.anchored_at("GD", vp.digest) is not None
        assert trust.tree_size("GD/0") == size0

        # 5. Shard 0 droppable: the station drops its state; the others stay.
        w.clock.offset = END0_S + GRACE_S + 1
        again = client.sync("GD").region("GD")
        assert again.dropped == ("GD/0",) and trust.tree_size("GD/0") == 0
        assert [s.region for s in again.shards] == ["GD/1", "GD/2"]
        assert trust.tree_size("GD/1") == size1
        w.clock.offset = ROLLED_S

    # 5a. The station service's syncer and freshness read-out follow the shards too:
    #     GD is as fresh as its stalest tracked shard (real clock: shards 0 and 1).
    syncer = LedgerSyncer(w.consortium, w.tmp / "kiosk.db")
    outcome = syncer.sync(None)
    assert outcome.ok and outcome.report is not None, outcome.error
    gd_report = outcome.report.region("GD")
    assert gd_report.status is RegionStatus.UPDATED
    assert [s.region for s in gd_report.shards] == ["GD/0", "GD/1"]
    ages = sync_ages(w.tmp / "kiosk.db", time.time(), ("GD",))
    assert ages["GD"] is not None and ages["GD"] < 60

    # 5b. With GD's node down, a station syncs every shard from MO's mirror of it.
    w.servers[0].stop()
    try:
        client, trust = w.station("via-mirror", compact=False)
        report = client.sync("GD").region("GD")
        assert report.status is RegionStatus.UPDATED, report.errors
        assert all("/mirror/" in (s.source or "") for s in report.shards)
        assert trust.tree_size("GD/0") == size0 and trust.tree_size("GD/1") == size1
    finally:
        w.servers[0].start()

    # 6. The mirror stops mirroring it, and the node no longer serves it.
    h = mirror_prefix(w.mo_url, f"{w.gd.origin}/0")
    assert requests.get(f"{h}/checkpoint", timeout=5).status_code == 200
    assert w.mo_joint.mirror.drop_droppable(w.t0 + END0_S + GRACE_S + 1) == [f"{w.gd.origin}/0"]
    assert requests.get(f"{h}/checkpoint", timeout=5).status_code == 404
    w.clock.offset = END0_S + GRACE_S + 1
    assert requests.get(f"{w.gd_url}/0/checkpoint", timeout=5).status_code == 404
    assert requests.get(f"{w.gd_url}/1/checkpoint", timeout=5).status_code == 200
