"""A sharded region's node over real HTTP: entries routed to the shard of their expiry
(revocations to the shard that anchored them, keys to every shard), each shard a
complete log under /<k>, frozen at its end (final checkpoint marked, growth refused
with 409), closed once droppable."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from ledger.clients.client import LedgerClient, authorization
from ledger.log.checkpoint import Checkpoint, open_checkpoint
from ledger.log.entries import CredentialRevoked, RevocationReason, decode_entry, encode_entry
from ledger.log.note import NoteSigner
from ledger.log.shards import ShardPlan, ShardSchedule, find_frozen
from ledger.log.tiles import decode_entry_bundle
from ledger.node.sharding import (
    SHARDED_KEY,
    ShardedNode,
    ShardingError,
    create_sharded_app,
    shard_database_url,
)
from ledger.testing import ORIGIN, NodeKeys, anchor, key_added, make_config, make_keys, serve

PERIOD_S = 3_600  # ledger.log.shards.MIN_PERIOD_S
GRACE_S = 60


@dataclass
class Clock:
    """Real time plus an offset the test moves forward (writer auth stays in window)."""

    offset: float = 0.0
    calls: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Sharded:
    base: str
    keys: NodeKeys
    clock: Clock
    plan: ShardPlan
    node: ShardedNode

    def post(self, entries: list[bytes], path: str = "", origin: str = ORIGIN) -> requests.Response:
        body = json.dumps({"entries": [base64.b64encode(e).decode() for e in entries]}).encode()
        auth = authorization(self.keys.writer, origin, body, int(time.time()))
        headers = {"Authorization": auth, "Content-Type": "application/json"}
        return requests.post(
            f"{self.base}{path}/v1/entries", data=body, headers=headers, timeout=10
        )

    def checkpoint(self, k: int) -> Checkpoint:
        r = requests.get(f"{self.base}/{k}/checkpoint", timeout=5)
        assert r.status_code == 200, r.text
        origin = self.node.plan.schedule.shard(k).origin
        # The one log key signs every shard under the shard's origin as key name.
        verifier = NoteSigner(origin, self.keys.signer.private_key).verifier()
        return open_checkpoint(r.content, verifier).checkpoint


@pytest.fixture
def sharded(tmp_path: Path) -> Iterator[Sharded]:
    keys = make_keys(tmp_path)
    now = int(time.time())
    # Shard 0 ends 100 s from now: the test crosses the boundary by moving the clock.
    plan = ShardPlan(ShardSchedule(ORIGIN, PERIOD_S, now + 100 - PERIOD_S), GRACE_S, PERIOD_S)
    clock = Clock()
    config = make_config(keys, f"sqlite:///{tmp_path / 'ledger.db'}", delay_s=0.02)
    app = create_sharded_app(config, plan, clock=clock, margin_s=0)
    node: ShardedNode = app.extensions[SHARDED_KEY]
    try:
        with serve(app) as base:
            yield Sharded(base, keys, clock, plan, node)
    finally:
        node.stop()


def _entries(s: Sharded, k: int) -> list[object]:
    size = s.checkpoint(k).size
    data = requests.get(f"{s.base}/{k}/tile/entries/000.p/{size}", timeout=5).content
    from ledger.log.entries import decode_leaf

    return [decode_entry(decode_leaf(x).entry_bytes) for x in decode_entry_bundle(data)]


def test_entries_are_routed_to_the_shard_of_their_expiry(sharded: Sharded) -> None:
    s = sharded
    end0 = s.plan.schedule.shard(0).end
    assert [
        x["number"] for x in requests.get(f"{s.base}/v1/shards", timeout=5).json()["shards"]
    ] == [0, 1]
    r = s.post([key_added(s.keys), anchor(s.keys, 1, end0 - 10), anchor(s.keys, 2, end0 + 10)])
    assert r.status_code == 200, r.text
    receipts = r.json()["receipts"]
    assert [x["shard"] for x in receipts] == [0, 0, 1]
    assert receipts[2]["origin"] == f"{ORIGIN}/1"
    # The key entry went to every shard, so each validates alone.
    for k in (0, 1):
        assert any(getattr(e, "kid", None) == s.keys.kid and not hasattr(e, "digest")
                   for e in _entries(s, k))  # fmt: skip
    assert s.checkpoint(0).origin == f"{ORIGIN}/0" and s.checkpoint(0).size == 2
    assert s.checkpoint(1).size == 2
    # A revocation goes to the shard that anchored its status index.
    rev = encode_entry(CredentialRevoked("GD", 2, RevocationReason.UNSPECIFIED, int(time.time())))
    r = s.post([rev])
    assert r.status_code == 200 and r.json()["receipts"][0]["shard"] == 1
    r = s.post([encode_entry(CredentialRevoked("GD", 99, RevocationReason.UNSPECIFIED, 0))])
    assert r.status_code == 422 and r.json()["rule"] == "not_anchored"
    # Sent straight to a shard, an anchor of another period breaks the shard's rule.
    r = s.post([anchor(s.keys, 3, end0 + 10)], path="/0", origin=f"{ORIGIN}/0")
    assert r.status_code == 422 and r.json()["rule"] == "wrong_shard"
    # Beyond the tracked shards: refused, typed.
    r = s.post([anchor(s.keys, 4, end0 + 20 * PERIOD_S)])
    assert r.status_code == 422 and r.json()["rule"] == "wrong_shard"
    assert requests.get(f"{s.base}/checkpoint", timeout=5).status_code == 404


def test_frozen_shard_signs_a_final_checkpoint_and_never_grows(sharded: Sharded) -> None:
    s = sharded
    end0 = s.plan.schedule.shard(0).end
    assert s.post([key_added(s.keys), anchor(s.keys, 1, end0 - 10)]).status_code == 200
    before = s.checkpoint(0)
    assert find_frozen(before.extensions) is None
    s.clock.offset = 150  # shard 0's period is over
    after = s.checkpoint(0)
    assert find_frozen(after.extensions) == (0, end0)
    assert (after.size, after.root_hash) == (before.size, before.root_hash)
    # Growth refused everywhere: routed, and straight at the shard.
    r = s.post([anchor(s.keys, 5, end0 - 5)])
    assert r.status_code == 409 and r.json()["error"] == "shard_frozen"
    r = s.post([anchor(s.keys, 5, end0 - 5)], path="/0", origin=f"{ORIGIN}/0")
    assert r.status_code == 409 and r.json()["error"] == "shard_frozen"
    r = s.post([encode_entry(CredentialRevoked("GD", 1, RevocationReason.UNSPECIFIED, 0))])
    assert r.status_code == 409 and r.json()["error"] == "shard_frozen"
    assert s.checkpoint(0).size == before.size
    # The next shard took over, and the shard after it opened seeded with the key.
    shards = requests.get(f"{s.base}/v1/shards", timeout=5).json()["shards"]
    assert {x["number"]: x["frozen"] for x in shards} == {0: True, 1: False, 2: False}
    assert s.checkpoint(2).size == 1
    assert s.post([anchor(s.keys, 6, end0 + 5)]).json()["receipts"][0]["shard"] == 1
    # The frozen shard re-verifies whole through its own read API (before archiving).
    from click.testing import CliRunner

    from ledger.cli import cli

    vkey = NoteSigner(f"{ORIGIN}/0", s.keys.signer.private_key).verifier().vkey()
    r = CliRunner().invoke(cli, ["audit", f"{s.base}/0", "--vkey", vkey])
    assert r.exit_code == 0, r.output


def test_droppable_shard_is_closed_and_no_longer_served(sharded: Sharded) -> None:
    s = sharded
    end0 = s.plan.schedule.shard(0).end
    assert s.post([key_added(s.keys), anchor(s.keys, 1, end0 - 10)]).status_code == 200
    s.clock.offset = 100 + GRACE_S + 1
    r = requests.get(f"{s.base}/0/checkpoint", timeout=5)
    assert r.status_code == 404
    assert 0 not in [
        x["number"] for x in requests.get(f"{s.base}/v1/shards", timeout=5).json()["shards"]
    ]
    # The data stays on disk for the operator to archive or drop.
    assert Path(shard_database_url(s.node.config.database_url, 0)[len("sqlite:///") :]).exists()


def test_restarted_node_keeps_a_frozen_shard_frozen(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    now = int(time.time())
    plan = ShardPlan(ShardSchedule(ORIGIN, PERIOD_S, now + 100 - PERIOD_S), GRACE_S, PERIOD_S)
    clock = Clock()
    config = make_config(keys, f"sqlite:///{tmp_path / 'ledger.db'}", delay_s=0.02)
    app = create_sharded_app(config, plan, clock=clock, margin_s=0)
    node: ShardedNode = app.extensions[SHARDED_KEY]
    with serve(app) as base:
        client = LedgerClient(base, keys.writer, timeout=10, origin=ORIGIN)
        client.submit([key_added(keys), anchor(keys, 1, plan.schedule.shard(0).end - 1)])
    clock.offset = 150
    node.ensure()
    note = node.get(0).node.store.latest_checkpoint().note  # type: ignore[union-attr]
    node.stop()
    again = create_sharded_app(config, plan, clock=clock, margin_s=0, start=False)
    node2: ShardedNode = again.extensions[SHARDED_KEY]
    try:
        node2.ensure()
        sl = node2.get(0)
        assert sl is not None and sl.node.sequencer.frozen
        assert sl.node.store.latest_checkpoint().note == note  # type: ignore[union-attr]
    finally:
        node2.stop()


@pytest.mark.parametrize(
    ("url", "k", "want"),
    [
        ("sqlite:////var/lib/hb/ledger.db", 7, "sqlite:////var/lib/hb/ledger.shard-7.db"),
        ("sqlite:////var/lib/hb/ledger", 7, "sqlite:////var/lib/hb/ledger.shard-7"),
        ("sqlite:////x/ledger-{shard}.sqlite", 3, "sqlite:////x/ledger-3.sqlite"),
        ("postgresql+psycopg://u@h/gd", 2,
         "postgresql+psycopg://u@h/gd?options=-csearch_path%3Dledger_shard_2"),
    ],
)  # fmt: skip
def test_each_shard_gets_its_own_database(url: str, k: int, want: str) -> None:
    assert shard_database_url(url, k) == want


def test_in_memory_database_cannot_hold_shards() -> None:
    with pytest.raises(ShardingError):
        shard_database_url("sqlite:///:memory:", 0)


@pytest.mark.postgres
def test_shards_live_in_their_own_postgresql_schemas(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    import sqlalchemy as sa

    keys = make_keys(tmp_path)
    now = int(time.time())
    plan = ShardPlan(ShardSchedule(ORIGIN, PERIOD_S, now + 100 - PERIOD_S), GRACE_S, PERIOD_S)
    app = create_sharded_app(make_config(keys, fresh_postgres_url, delay_s=0.02), plan,
                             clock=Clock(), margin_s=0)  # fmt: skip
    node: ShardedNode = app.extensions[SHARDED_KEY]
    try:
        end0 = plan.schedule.shard(0).end
        with serve(app) as base:
            client = LedgerClient(base, keys.writer, timeout=10, origin=ORIGIN)
            got = client.submit([key_added(keys), anchor(keys, 1, end0 - 1), anchor(keys, 2, end0)])
        assert [r.index for r in got] == [0, 1, 1]
        engine = sa.create_engine(fresh_postgres_url)
        try:
            with engine.connect() as c:
                sizes = {
                    k: c.execute(sa.text(f"SELECT size FROM ledger_shard_{k}.tree_state")).scalar()
                    for k in (0, 1)
                }
                public = c.execute(sa.text(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' "
                    "AND table_name = 'tree_state'")).scalar()  # fmt: skip
        finally:
            engine.dispose()
        assert sizes == {0: 2, 1: 2} and public == 0
    finally:
        node.stop()
