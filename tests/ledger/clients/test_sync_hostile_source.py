"""A hostile source cannot keep a station's view of a region's log from converging,
over real HTTP on 127.0.0.1.

GD's log holds eight entry bundles (seven full, one partial of 76 entries), with a
revocation in bundle 1 and another as the log's last entry. The hostile source is GD's
real node behind a small proxy that forwards every request and rewrites the leaves of
one bundle: the revocation becomes an innocuous anchor, well formed and signed for
nothing (entries carry no signature of their own, only the tree does). It can also
hold each bundle a while, so that a station's `SourcePace` abandons it part-way. It
offers the same cosigned checkpoint as MO's validating mirror of GD, listed after it,
so the station asks it first.

Before bundles were checked as they arrived, the rewritten bundle was staged, the pace
abandoned the hostile source, the mirror resumed after it, the root check over the
whole range failed, and the mirror refetched every bundle ("staged entries did not
verify; refetching them"), or, for a large log, ran out of its own cap doing so, pass
after pass. Now the rewritten bundle is refused the moment it arrives, the hostile
source is reported ("source served entries that do not match checkpoint ..."), and
the mirror continues from the last checked bundle: the station converges in that one
pass, fetching each bundle from the mirror at most once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
from flask import Flask, Response, request

from ledger.clients.sync import (
    HttpLogSource,
    LogSource,
    RegionStatus,
    SourcePace,
    SyncClient,
    SyncedTrustState,
)
from ledger.log.entries import (
    CredentialAnchored,
    CredentialRevoked,
    RevocationReason,
    TimestampedEntry,
    decode_entry,
    decode_leaf,
    encode_entry,
    encode_leaf,
)
from ledger.log.tiles import decode_entry_bundle, encode_entry_bundle, parse_entry_bundle_path
from tests.support.joint_world import (
    Server,
    World,
    build_world,
    cosigned_by,
    mirror_of,
    shutdown,
    wait_for,
)
from tests.support.slow_proxy import SlowProxy, slow_proxy

FULL_BUNDLES = 7
GD_SIZE = FULL_BUNDLES * 256 + 76  # 1,868 entries: bundles 0..6 full, bundle 7 of 76
REVOKED_EARLY = (300, 5)  # (log position, status index): in bundle 1
REVOKED_LAST = (GD_SIZE - 1, 6)  # the last entry: in the partial bundle 7
BUNDLES = FULL_BUNDLES + 1
DELAY_S = 0.3  # seconds the slow hostile source holds each entry bundle
# Only the cap counts, scaled to the test: the hostile source, at DELAY_S a bundle,
# gets through a few bundles and not all eight.
SLOW_PACE = SourcePace(min_s=0.0, max_avg_s=10.0, cap_s=1.0)
ROOMY_PACE = SourcePace(min_s=0.0, max_avg_s=10.0, cap_s=30.0)


@dataclass
class Hostile:
    """GD's node behind a proxy that rewrites the revocations of bundle `rewrite`."""

    upstream: str
    kid: str
    server: Server
    rewrite: int | None = None  # the bundle whose revocations become anchors
    forge_tiles: bool = False  # hash tiles with their first hash zeroed
    delay_s: float = 0.0
    seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.server.url

    def bundles(self) -> list[int]:
        with self.lock:
            return [parse_entry_bundle_path(p[1:])[0] for p in self.seen if "/entries/" in p]

    def forged(self, raw: bytes) -> bytes:
        """A revocation leaf turned into an anchor leaf of the same time."""
        leaf = decode_leaf(raw)
        entry = decode_entry(leaf.entry_bytes)
        if not isinstance(entry, CredentialRevoked):
            return raw
        anchor = CredentialAnchored(
            "GD", (10**6 + entry.status_index).to_bytes(32, "big"), 10**6 + entry.status_index,
            self.kid, 4_000_000_000,
        )  # fmt: skip
        return encode_leaf(TimestampedEntry(leaf.timestamp_ms, encode_entry(anchor)))


def hostile_proxy(upstream: str, kid: str) -> Hostile:
    app = Flask("hostile-gd")
    hostile = Hostile(upstream, kid, Server(app))

    @app.get("/<path:path>")
    def forward(path: str) -> Response:
        with hostile.lock:
            hostile.seen.append(request.path)
        answer = requests.get(f"{upstream}/{path}", timeout=10)
        body = answer.content
        if path.startswith("tile/entries/") and answer.status_code == 200:
            time.sleep(hostile.delay_s)
            index, _ = parse_entry_bundle_path(path)
            if index == hostile.rewrite:
                body = encode_entry_bundle([hostile.forged(x) for x in decode_entry_bundle(body)])
                assert body != answer.content
        elif path.startswith("tile/") and hostile.forge_tiles and answer.status_code == 200:
            body = bytes(32) + body[32:]
        return Response(body, status=answer.status_code, content_type="application/octet-stream")

    hostile.server.start()
    return hostile


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(tmp_path_factory.mktemp("hostile"), [("GD", False), ("MO", False)], "all")
    try:
        gd = w.regions["GD"]
        gd.register_key()
        entries: list[object] = []
        for position in range(1, GD_SIZE):
            revoked = {REVOKED_EARLY[0]: REVOKED_EARLY[1], REVOKED_LAST[0]: REVOKED_LAST[1]}
            if position in revoked:
                reason = RevocationReason.FRAUD
                entries.append(CredentialRevoked("GD", revoked[position], reason, 1_700_000_000))
            else:
                digest = position.to_bytes(32, "big")
                entries.append(CredentialAnchored("GD", digest, position, gd.kid, 4_000_000_000))
        for start in range(0, len(entries), 400):
            gd.submit(*entries[start : start + 400])
        wait_for(lambda: cosigned_by(gd, GD_SIZE, 2), f"GD size {GD_SIZE} cosigned")
        mirror = f"{mirror_of(w, 'GD', at='MO')}/checkpoint"
        wait_for(
            lambda: requests.get(mirror, timeout=5).content == gd.checkpoint(),
            "MO's mirror of GD caught up with GD's node",
        )
        yield w
    finally:
        shutdown(w)


@pytest.fixture
def sources(world: World) -> Iterator[tuple[Hostile, SlowProxy]]:
    gd = world.regions["GD"]
    hostile = hostile_proxy(gd.url, gd.kid)
    mirror = slow_proxy(mirror_of(world, "GD", at="MO"), 0.0)  # forwards at once, records paths
    try:
        yield hostile, mirror
    finally:
        hostile.server.close()
        mirror.close()


def _station(
    world: World, name: str, hostile: Hostile, mirror: SlowProxy, pace: SourcePace
) -> SyncClient:
    listed: dict[str, list[LogSource]] = {
        "GD": [HttpLogSource(hostile.url), HttpLogSource(mirror.url)],
        "MO": [HttpLogSource(world.regions["MO"].url)],
    }
    client = SyncClient(world.consortium, world.tmp / f"{name}.db",
                        sources=lambda log_id: listed[log_id], pace=pace)  # fmt: skip
    world.stations.append(client)
    return client


def _mirror_bundles(mirror: SlowProxy) -> list[int]:
    with mirror.lock:
        return [parse_entry_bundle_path(p[1:])[0] for p in mirror.seen if "/entries/" in p]


def _converged_with_both_revocations(world: World, name: str) -> None:
    state = SyncedTrustState(world.tmp / f"{name}.db")
    try:
        assert state.tree_size("GD") == GD_SIZE
        assert state.is_revoked("GD", REVOKED_EARLY[1]) and state.is_revoked("GD", REVOKED_LAST[1])
        assert state.anchored_at("GD", (10**6 + REVOKED_EARLY[1]).to_bytes(32, "big")) is None
    finally:
        state.close()


def _hostile_reported(errors: tuple[str, ...], hostile: Hostile, bundle: int) -> None:
    want = f"{hostile.url}: source served entries that do not match checkpoint {GD_SIZE}: "
    assert any(e.startswith(want) and f"bundle {bundle}" in e for e in errors), errors


def test_wrong_bundles_from_a_slow_source_are_never_staged(
    world: World, sources: tuple[Hostile, SlowProxy], caplog: pytest.LogCaptureFixture
) -> None:
    hostile, mirror = sources
    hostile.rewrite, hostile.delay_s = 1, DELAY_S
    caplog.set_level(logging.INFO)
    client = _station(world, "slow-hostile", hostile, mirror, SLOW_PACE)
    report = client.sync("GD").region("GD")
    # The hostile source was asked first, served bundle 0 (checked, staged) and the
    # rewritten bundle 1, which was refused as it arrived; it was never asked for more.
    assert hostile.bundles() == [0, 1]
    _hostile_reported(report.errors, hostile, 1)
    # The mirror continued from bundle 1, each bundle once: no refetch of the range,
    # and the station converged in this one pass.
    assert report.status is RegionStatus.UPDATED and report.new_size == GD_SIZE
    assert report.source == mirror.url
    assert _mirror_bundles(mirror) == list(range(1, BUNDLES))
    assert "did not verify" not in caplog.text and "refetching" not in caplog.text
    _converged_with_both_revocations(world, "slow-hostile")


def test_wrong_partial_bundle_is_refused_and_only_it_is_fetched_again(
    world: World, sources: tuple[Hostile, SlowProxy], caplog: pytest.LogCaptureFixture
) -> None:
    hostile, mirror = sources
    hostile.rewrite = FULL_BUNDLES  # the partial bundle, holding the last revocation
    caplog.set_level(logging.INFO)
    client = _station(world, "partial-hostile", hostile, mirror, ROOMY_PACE)
    report = client.sync("GD").region("GD")
    assert hostile.bundles() == list(range(BUNDLES))
    _hostile_reported(report.errors, hostile, FULL_BUNDLES)
    assert report.status is RegionStatus.UPDATED and report.new_size == GD_SIZE
    assert report.source == mirror.url
    # The seven full bundles the hostile source served were the logged ones: checked,
    # staged and kept; the mirror was asked for the partial bundle alone.
    assert _mirror_bundles(mirror) == [FULL_BUNDLES]
    assert "refetching" not in caplog.text
    _converged_with_both_revocations(world, "partial-hostile")


def test_tiles_of_another_tree_abandon_the_source_before_any_bundle(
    world: World, sources: tuple[Hostile, SlowProxy]
) -> None:
    # The hostile source serves a right-edge tile of its own making (say, from the
    # tree its rewritten entries would give): refused before a bundle is asked for.
    hostile, mirror = sources
    hostile.forge_tiles = True
    client = _station(world, "tile-hostile", hostile, mirror, ROOMY_PACE)
    report = client.sync("GD").region("GD")
    assert hostile.bundles() == []
    assert any(
        e.startswith(f"{hostile.url}: source served entries that do not match checkpoint")
        and "give root" in e
        for e in report.errors
    ), report.errors
    assert report.status is RegionStatus.UPDATED and report.new_size == GD_SIZE
    assert _mirror_bundles(mirror) == list(range(BUNDLES))
    _converged_with_both_revocations(world, "tile-hostile")
