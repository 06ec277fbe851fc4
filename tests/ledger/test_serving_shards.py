"""`ledger serve` for a member whose consortium entry has a shard table: the node is
built sharded (ledger.node.sharding) from the same node.toml, with per-shard
cosignature collection, and serves each tracked shard under /<k>."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ledger.log.consortium import load_consortium, write_consortium
from ledger.log.shards import ShardPlan, ShardSchedule
from ledger.serving import open_node
from tests.support.ledger_cli import init_node_folder, origin_of
from tests.support.ledger_cli import write_consortium as write_cli_consortium

DAY_S = 86_400


def test_member_with_a_shard_table_is_served_sharded(tmp_path: Path) -> None:
    for region in ("GD", "MO"):
        init_node_folder(tmp_path / region, region)
    path = write_cli_consortium(tmp_path, {"GD": 18401, "MO": 18402})
    c = load_consortium(path)
    epoch = int(time.time()) - DAY_S // 2
    plan = ShardPlan(ShardSchedule(origin_of("GD"), DAY_S, epoch), 300, 2 * DAY_S)
    members = tuple(dataclasses.replace(m, shards=plan) if m.id == "GD" else m for m in c.members)
    write_consortium(path, dataclasses.replace(c, members=members))
    running = open_node(tmp_path / "GD" / "node.toml", path)
    try:
        assert running.sharded is not None and running.joint is not None
        client = running.app.test_client()
        shards = client.get("/v1/shards").get_json()["shards"]
        assert [s["number"] for s in shards] == [0, 1, 2]
        assert [s["state"] for s in shards] == ["open", "future", "future"]
        cp = client.get("/1/checkpoint")
        assert cp.status_code == 200 and cp.data.startswith(f"{origin_of('GD')}/1\n".encode())
        assert client.get("/v1/status").get_json()["sharded"] is True
        assert running.metrics.registry is not None
        assert client.get("/healthz").status_code == 200
    finally:
        running.close()
    # The unsharded member is served as before.
    mo = open_node(tmp_path / "MO" / "node.toml", path)
    try:
        assert mo.sharded is None
        assert mo.app.test_client().get("/checkpoint").status_code == 200
    finally:
        mo.close()
