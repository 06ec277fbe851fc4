"""A station against a hostile sharded node, over real HTTP on 127.0.0.1.

The node lists a million shards in `/v1/shards`, every one of them "droppable", and
answers every shard checkpoint with garbage. The station follows exactly the shards the
consortium's plan tracks at its own clock, never asks the node which shards exist, and
reports the region failed, naming each shard, in bounded time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, Response, request

from common.serving import ServedApp, free_port, serve_in_thread
from ledger.clients.sync import RegionStatus, SyncClient
from ledger.log.consortium import build_consortium
from tests.support.ledger_joint import member_keys

PERIOD_S = 3_600
MILLION = 1_000_000


def _hostile(seen: list[str]) -> Flask:
    app = Flask("hostile-sharded-node")

    def listing() -> Iterator[bytes]:
        yield b'{"origin": "gd.healthbridge.test/log", "shards": ['
        for k in range(MILLION):
            sep = b"," if k else b""
            yield sep + json.dumps({"number": k, "state": "droppable", "frozen": True}).encode()
        yield b"]}"

    @app.before_request
    def record() -> None:
        seen.append(request.path)

    app.add_url_rule(
        "/v1/shards", "shards", lambda: Response(listing(), mimetype="application/json")
    )
    app.add_url_rule("/<int:k>/checkpoint", "cp", lambda k: Response(b"not a checkpoint\n"))
    return app


@pytest.fixture()
def hostile() -> Iterator[tuple[ServedApp, list[str]]]:
    seen: list[str] = []
    with serve_in_thread(_hostile(seen)) as served:
        yield served, seen


def test_station_follows_the_plan_not_a_hostile_nodes_million_shard_listing(
    hostile: tuple[ServedApp, list[str]], tmp_path: Path
) -> None:
    served, seen = hostile
    now = int(time.time())
    gd = member_keys("GD", int(served.url.rsplit(":", 1)[1]))
    mo = member_keys("MO", free_port())  # nobody listens: its mirror is unreachable
    table = gd.table()
    table["shards"] = {"period_s": PERIOD_S, "epoch": now - 10 * PERIOD_S, "grace_s": 300,
                       "max_validity_s": 24 * PERIOD_S}  # fmt: skip
    consortium = build_consortium([table, mo.table()], threshold="all")
    plan = consortium.member("GD").shards
    assert plan is not None
    tracked = [s.number for s in plan.tracked(now)]
    client = SyncClient(consortium, tmp_path / "station.db", clock=lambda: float(now))
    try:
        started = time.monotonic()
        report = client.sync("GD").region("GD")
        took = time.monotonic() - started
    finally:
        client.close()
    assert "/v1/shards" not in seen
    assert sorted({int(p.split("/")[1]) for p in seen}) == tracked
    assert len(tracked) <= plan.max_tracked()
    assert report.status is RegionStatus.FAILED and report.synced_at is None
    assert [s.region for s in report.shards] == [f"GD/{k}" for k in tracked]
    assert all(any(e.startswith(f"GD/{k}: ") for e in report.errors) for k in tracked)
    assert took < 30, took
