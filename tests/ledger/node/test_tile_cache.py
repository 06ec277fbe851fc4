"""Stations syncing through a real HTTP cache (Debian's nginx, rendered from
deploy/tile-cache/tile-cache.conf.template) in front of GD's ledger node: the cache
keeps full tiles and bundles (immutable), and with the node stopped a fresh station
still syncs GD from the cache alone, its freshness judged from the checkpoint's
cosignature timestamps, not from when the cache answered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from common.nginx import render_template, run_nginx
from common.serving import free_port
from ledger.clients.sync import (
    HttpLogSource,
    RegionStatus,
    SyncClient,
    SyncedTrustState,
    mirror_prefix,
)
from ledger.log.entries import CredentialAnchored
from ledger.node.config import MUTABLE_MAX_AGE_S
from tests.ledger.joint.test_joint_regions import (
    World,
    build_world,
    cosigned_by,
    shutdown,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "deploy" / "tile-cache" / "tile-cache.conf.template"
ANCHORS = 600  # two full entry bundles and a partial one
HOUR_S = 3_600


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path, [("GD", False), ("MO", False)], "all")
    try:
        yield w
    finally:
        shutdown(w)


def _cached_station(world: World, name: str, cache: str, clock=time.time) -> SyncClient:  # type: ignore[no-untyped-def]
    """A station whose only source for GD is the cache (MO: its own node)."""
    mo = world.regions["MO"]

    def sources(region: str) -> list[HttpLogSource]:
        return [HttpLogSource(cache if region == "GD" else mo.url)]

    client = SyncClient(world.consortium, world.tmp / f"{name}.db", sources=sources, clock=clock)
    world.stations.append(client)
    return client


def test_station_syncs_through_nginx_cache_with_the_node_stopped(world: World) -> None:
    gd = world.regions["GD"]
    gd.register_key()
    assert gd.writer is not None
    gd.submit(
        *[
            CredentialAnchored("GD", i.to_bytes(32, "big"), i, gd.kid, 4_000_000_000)
            for i in range(1, ANCHORS)
        ]
    )
    wait_for(lambda: cosigned_by(gd, gd.writer.size(), 2), "GD cosigned by GD and MO")
    size = gd.writer.size()
    port = free_port()
    block = render_template(
        TEMPLATE,
        {
            "LEDGER_UPSTREAM": f"127.0.0.1:{gd.keys.port}",
            "LISTEN_PORT": f"127.0.0.1:{port}",
            "CACHE_DIR": str(world.tmp / "nginx-cache"),
        },
    )
    with run_nginx(world.tmp / "nginx", block, port) as cache:
        warm = _cached_station(world, "warm", cache).sync("GD").region("GD")
        assert warm.status is RegionStatus.UPDATED and warm.new_size == size
        bundle = requests.get(f"{cache}/tile/entries/000", timeout=5)
        assert bundle.headers["X-Cache-Status"] == "HIT"  # the warm sync left it there

        gd.server.stop()  # every request to the node now fails with 503
        assert requests.get(f"{gd.url}/checkpoint", timeout=5).status_code == 503
        time.sleep(MUTABLE_MAX_AGE_S + 0.5)  # the cached checkpoint is now past max-age
        later = time.time() + HOUR_S
        station = _cached_station(world, "cold", cache, clock=lambda: later)
        report = station.sync("GD")
        r = report.region("GD")
        assert r.status is RegionStatus.UPDATED and r.new_size == size
        assert r.source == cache
        state = SyncedTrustState(world.tmp / "cold.db")
        assert state.anchored_at("GD", (ANCHORS - 1).to_bytes(32, "big")) is not None
        # Freshness comes from the cosignatures, so an hour later the view is an hour
        # old, however recently the cache answered.
        assert report.staleness_s("GD") >= HOUR_S
        cp = requests.get(f"{cache}/checkpoint", timeout=5)
        # The node answers 503: this checkpoint can only come from the cache (STALE, or
        # HIT while nginx's background update of it is failing).
        assert cp.status_code == 200 and cp.headers["X-Cache-Status"] in {"STALE", "HIT"}
        assert (
            requests.get(f"{cache}/tile/entries/001", timeout=5).headers["X-Cache-Status"] == "HIT"
        )


def test_mirror_serves_tiles_with_the_same_cache_headers_as_the_node(world: World) -> None:
    """A cache in front of a mirror keeps its full tiles too (they used to carry no
    Cache-Control at all) and revalidates its checkpoint with the ETag."""
    gd, mo = world.regions["GD"], world.regions["MO"]
    gd.register_key()
    assert gd.writer is not None
    gd.submit(
        *[
            CredentialAnchored("GD", i.to_bytes(32, "big"), i, gd.kid, 4_000_000_000)
            for i in range(1, 300)
        ]
    )
    wait_for(lambda: cosigned_by(gd, gd.writer.size(), 2), "GD cosigned by GD and MO")
    prefix = mirror_prefix(mo.url, gd.keys.origin)
    for path in ("tile/entries/000", "tile/0/000"):
        mirrored, direct = (requests.get(f"{p}/{path}", timeout=5) for p in (prefix, gd.url))
        assert mirrored.content == direct.content
        assert mirrored.headers["Cache-Control"] == direct.headers["Cache-Control"]
        assert "immutable" in mirrored.headers["Cache-Control"]
    partial = requests.get(f"{prefix}/tile/entries/001.p/44", timeout=5)
    assert "immutable" not in partial.headers["Cache-Control"]
    cp = requests.get(f"{prefix}/checkpoint", timeout=5)
    again = requests.get(
        f"{prefix}/checkpoint", headers={"If-None-Match": cp.headers["ETag"]}, timeout=5
    )
    assert again.status_code == 304
