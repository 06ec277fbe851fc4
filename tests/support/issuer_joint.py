"""Two regions in joint operation for issuer tests: per region a real issuer context and
a real ledger node with its witness and validating mirror (ledger.joint.api
JointServices), served over HTTP on 127.0.0.1; the consortium file (quorum: every
member's witness) names the issuers' own root keys. No tests here."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from flask import Flask

from common.serving import free_port
from issuer import anchor
from issuer.context import Clock, IssuerContext
from issuer.testing import make_context
from ledger.joint.api import JointServices
from ledger.log.consortium import build_consortium, write_consortium
from ledger.log.entries import root_public_key_bytes
from ledger.node.app import EXTENSION_KEY, create_app
from ledger.node.config import NodeConfig
from ledger.node.sharding import SHARDED_KEY, create_sharded_app
from tests.support.joint_world import Server
from tests.support.ledger_joint import MemberKeys, member_keys, write_key

WAIT_S = 20.0  # seconds; generous for a loaded machine
T = TypeVar("T")


@dataclass
class JointRegion:
    ctx: IssuerContext
    keys: MemberKeys
    joint: JointServices
    node: Flask
    server: Server
    port: anchor.ClientLedgerPort

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.keys.port}"

    def anchor_all(self) -> int:
        return anchor.drain(self.ctx, self.port)


@dataclass
class JointWorld:
    regions: dict[str, JointRegion]
    consortium_path: Path


def wait_for(pred: Callable[[], T | None], what: str, timeout: float = WAIT_S) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def joint_world(
    tmp: Path,
    ids: tuple[str, ...] = ("GD", "MO"),
    *,
    shards: Mapping[str, dict[str, int]] | None = None,
    clocks: Mapping[str, Clock] | None = None,
) -> Iterator[JointWorld]:
    """`shards`: a `[members.shards]` table per region whose log is sharded (its node is
    then a ledger.node.sharding node); `clocks`: an issuer clock per region."""
    shards = shards or {}
    clocks = clocks or {}
    ctxs = {rid: make_context(tmp, rid, clock=clocks.get(rid)) for rid in ids}
    keys = {
        rid: dataclasses.replace(member_keys(rid, free_port()), root_key=c.keys.root_key())
        for rid, c in ctxs.items()
    }
    tables = []
    for rid, k in keys.items():
        table = k.table()
        if rid in shards:
            table["shards"] = dict(shards[rid])
        tables.append(table)
    consortium = build_consortium(tables, threshold="all")
    consortium_path = tmp / "consortium.toml"
    write_consortium(consortium_path, consortium)
    regions: dict[str, JointRegion] = {}
    try:
        for rid, k in keys.items():
            c = ctxs[rid]
            folder = tmp / f"{rid}-node"
            folder.mkdir()
            db = f"sqlite:///{folder / 'node.db'}"
            wkey = write_key(folder / "witness.skey", k.witness_signer.skey())
            lkey = write_key(folder / "log.skey", k.log_signer.skey())
            joint = JointServices.open(consortium, rid, wkey, db)
            root = k.root_public_raw()
            config = NodeConfig(
                region=rid,
                origin=k.origin,
                log_key_file=lkey,
                database_url=db,
                root_public_key=root,
                writer_public_keys=(root, root_public_key_bytes(c.keys.writer_key())),
                max_batch_delay_s=0.02,
                cosign_hook=joint.collector,
            )
            plan = consortium.member(rid).shards
            if plan is None:
                app = create_app(config, extra_blueprints=joint.blueprints())
            else:
                app = create_sharded_app(
                    config, plan, extra_blueprints=joint.blueprints(), hooks=joint.shard_hooks()
                )
            joint.attach(app, retry_interval_s=0.3)
            server = Server(app, k.port)
            url = f"http://127.0.0.1:{k.port}"
            c.config = c.config.replace(ledger_url=url, consortium_path=consortium_path)
            port = anchor.ClientLedgerPort(url, c.keys.writer_key(), 10)
            regions[rid] = JointRegion(c, k, joint, app, server, port)
        for r in regions.values():
            r.server.start()
        for r in regions.values():
            r.anchor_all()  # the key entries queued when the issuer was set up
        yield JointWorld(regions, consortium_path)
    finally:
        for r in regions.values():
            r.joint.stop()
            r.server.stop()
            if SHARDED_KEY in r.node.extensions:
                r.node.extensions[SHARDED_KEY].stop()
            else:
                r.node.extensions[EXTENSION_KEY].sequencer.stop()
                r.node.extensions[EXTENSION_KEY].store.dispose()
        for c in ctxs.values():
            c.dispose()
