"""A region's own node answering every request correctly but slowly, over real HTTP on
127.0.0.1: it must not hold a station's view of that region nor of the regions synced
after it.

GD's log holds more entries than fit in four entry bundles; GD's node is reached
through a proxy that forwards each request and holds the answer for `DELAY_S` before
sending it at a normal pace (the reader's header deadline and body pace never trip).
MO's validating mirror of GD answers at once. Without a pace, a station takes GD's
state from the slow node (it offers the largest, freshest tree first) and the pass
lasts requests x delay; with `SourcePace` the slow node is abandoned for the mirror
after `min_s`, GD and MO both sync, and the pass is bounded. A budget smaller than one
full sync still converges over passes, and the station's syncer reports the
abandonment in its outcome and log, without a traceback. One answer whose body flows
steadily but long (fast enough for the reader's pace) is cut at what is left of the
source's cap, not at the reader's MAX_ANSWER_S.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
import requests
from flask import Flask, Response

from common.serving import serve_in_thread
from ledger.clients.reader import LogUnreachableError
from ledger.clients.sync import (
    HttpLogSource,
    LogSource,
    PacedSource,
    RegionStatus,
    SlowSourceError,
    SourcePace,
    SyncClient,
    SyncedTrustState,
)
from ledger.log.entries import CredentialAnchored, CredentialRevoked, RevocationReason
from tests.support.joint_world import (
    World,
    build_world,
    cosigned_by,
    mirror_of,
    shutdown,
    wait_for,
)
from tests.support.slow_proxy import SlowProxy, slow_proxy
from verifier.syncing import BackgroundSync, LedgerSyncer

DELAY_S = 0.6  # seconds each answer of the slow node is held
ANCHORS = 4 * 256 + 76  # GD: one key + these = 1101 entries, five entry bundles
GD_SIZE = ANCHORS + 1
MO_SIZE = 3  # one key, one anchor, its revocation
# Small limits so the test runs in seconds; the defaults are SOURCE_* in sync.py.
PACE = SourcePace(min_s=0.5, max_avg_s=0.1, cap_s=3.0)
UNBOUNDED = SourcePace(min_s=1e9, max_avg_s=1e9, cap_s=1e9)  # the pass before the fix


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(tmp_path_factory.mktemp("slowsrc"), [("GD", False), ("MO", False)], "all")
    try:
        gd, mo = w.regions["GD"], w.regions["MO"]
        gd.register_key()
        for start in range(0, ANCHORS, 400):
            gd.submit(*(
                CredentialAnchored("GD", i.to_bytes(32, "big"), i, gd.kid, 4_000_000_000)
                for i in range(start + 1, min(start + 400, ANCHORS) + 1)
            ))  # fmt: skip
        mo.register_key()
        mo.anchor(7)
        mo.submit(CredentialRevoked("MO", 7, RevocationReason.FRAUD, 1_700_000_000))
        wait_for(lambda: cosigned_by(gd, GD_SIZE, 2), f"GD size {GD_SIZE} cosigned")
        wait_for(lambda: cosigned_by(mo, MO_SIZE, 2), f"MO size {MO_SIZE} cosigned")
        mirror = f"{mirror_of(w, 'GD', at='MO')}/checkpoint"
        wait_for(
            lambda: requests.get(mirror, timeout=5).content == gd.checkpoint(),
            "MO's mirror of GD caught up with GD's node",
        )
        yield w
    finally:
        shutdown(w)


@pytest.fixture
def slow(world: World) -> Iterator[SlowProxy]:
    proxy = slow_proxy(world.regions["GD"].url, DELAY_S)
    try:
        yield proxy
    finally:
        proxy.close()


def _sources(world: World, slow: SlowProxy, mirror: bool = True) -> dict[str, list[LogSource]]:
    gd: list[LogSource] = [HttpLogSource(slow.url)]
    if mirror:
        gd.append(HttpLogSource(mirror_of(world, "GD", at="MO")))
    return {"GD": gd, "MO": [HttpLogSource(world.regions["MO"].url)]}


def _station(
    world: World, name: str, sources: dict[str, list[LogSource]], pace: SourcePace, compact: bool
) -> SyncClient:
    client = SyncClient(
        world.consortium, world.tmp / f"{name}.db",
        sources=lambda log_id: sources[log_id], compact=compact, pace=pace,
    )  # fmt: skip
    world.stations.append(client)
    return client


@pytest.mark.parametrize("compact", [False, True], ids=["full", "compact"])
def test_slow_region_node_is_abandoned_for_the_mirror_and_every_region_syncs(
    world: World, slow: SlowProxy, compact: bool
) -> None:
    mode = "compact" if compact else "full"
    sources = _sources(world, slow)
    mirror_name = sources["GD"][1].name

    # Before: nothing limits a source's pace, so the slow node (first among equals)
    # serves every request of GD's sync, one delay each, and MO waits behind it.
    before = _station(world, f"before-{mode}", sources, UNBOUNDED, compact)
    started = time.monotonic()
    report = before.sync()
    before_s = time.monotonic() - started
    slow_requests = slow.requests()
    gd = report.region("GD")
    assert gd.status is RegionStatus.UPDATED and gd.source == slow.url
    # checkpoint + snapshot | checkpoint + the right edge's two tiles + five bundles
    assert slow_requests == (2 if compact else 1 + 2 + 5)
    assert before_s >= slow_requests * DELAY_S

    # After: the slow node is abandoned once its requests took `min_s` at more than
    # `max_avg_s` each (here: after its checkpoint), and the mirror serves GD.
    slow.reset()
    after = _station(world, f"after-{mode}", sources, PACE, compact)
    started = time.monotonic()
    report = after.sync()
    after_s = time.monotonic() - started
    gd, mo = report.region("GD"), report.region("MO")
    assert gd.status is RegionStatus.UPDATED and gd.new_size == GD_SIZE
    assert gd.source == mirror_name
    assert any("slow source abandoned" in e for e in gd.errors), gd.errors
    assert mo.status is RegionStatus.UPDATED and mo.new_size == MO_SIZE
    assert slow.requests() == 1
    assert after_s < DELAY_S + 2.0  # one slow answer, then loopback speed
    state = SyncedTrustState(world.tmp / f"after-{mode}.db")
    try:
        assert state.is_revoked("MO", 7)
        assert state.key("GD", world.regions["GD"].kid) is not None
    finally:
        state.close()
    print(
        f"\nslow GD node ({mode}, {DELAY_S} s per answer): pass {before_s:.2f} s over "
        f"{slow_requests} slow requests before, {after_s:.2f} s with SourcePace"
    )


def test_a_budget_smaller_than_one_full_sync_still_converges_over_passes(
    world: World, slow: SlowProxy
) -> None:
    # Only the slow node, a cap below one full sync (checkpoint + five bundles), and a
    # pace check that never trips: each pass stages what it fetched within the cap,
    # the next one resumes after it, nothing is fetched twice.
    slow.delay_s = 0.2
    pace = SourcePace(min_s=0.0, max_avg_s=10.0, cap_s=0.9)
    client = _station(world, "budget", _sources(world, slow, mirror=False), pace, False)
    first = client.sync("GD").region("GD")
    assert first.status is RegionStatus.FAILED and first.new_size == 0
    assert any("slow source abandoned" in e for e in first.errors), first.errors
    bundles_first = sum("/entries/" in p for p in slow.seen)
    assert 0 < bundles_first < 5
    passes = 1
    report = first
    while report.status is RegionStatus.FAILED and passes < 8:
        report = client.sync("GD").region("GD")
        passes += 1
    assert report.status is RegionStatus.UPDATED and report.new_size == GD_SIZE
    # Each bundle arrived once; at most one more per pass was cut at the cap.
    bundles = [p for p in slow.seen if "/entries/" in p]
    assert len(set(bundles)) == 5 and len(bundles) <= 5 + passes
    assert passes >= 2


def test_station_syncer_reports_the_abandoned_source_without_a_traceback(
    world: World, slow: SlowProxy, caplog: pytest.LogCaptureFixture
) -> None:
    # GD's only source is the slow node: GD stays unsynced this pass, MO syncs, and
    # both the outcome (what `verifier sync` prints) and the background loop's log
    # say why in one line.
    sources = _sources(world, slow, mirror=False)
    syncer = LedgerSyncer(
        world.consortium, world.tmp / "kiosk.db",
        client_factory=lambda c, p: SyncClient(c, p, sources=lambda r: sources[r], pace=PACE),
    )  # fmt: skip
    caplog.set_level(logging.INFO)
    background = BackgroundSync(syncer, interval_s=60.0)
    background.start()
    try:
        wait_for(lambda: syncer.last is not None, "one background sync pass")
    finally:
        background.stop()
    outcome = syncer.last
    assert outcome is not None and outcome.ok and outcome.report is not None
    gd, mo = outcome.report.region("GD"), outcome.report.region("MO")
    assert gd.status is RegionStatus.FAILED and mo.status is RegionStatus.UPDATED
    assert any(e.startswith(f"{slow.url}: slow source abandoned") for e in gd.errors)
    assert "slow source abandoned" in caplog.text
    assert all(r.exc_info is None for r in caplog.records)
    assert "Traceback" not in caplog.text


def test_one_long_steady_answer_is_cut_at_what_is_left_of_the_sources_cap() -> None:
    # 200 KiB/s, well over the reader's minimum pace: alone, the reader would wait the
    # whole 20 s (MAX_ANSWER_S is 300 s) for this one bundle.
    app = Flask("steady-node")

    def body() -> Iterator[bytes]:
        for _ in range(200):
            time.sleep(0.1)
            yield b"\x00" * 20_480

    app.add_url_rule("/tile/entries/<path:rest>", "bundle", lambda rest: Response(body()))
    with serve_in_thread(app) as served:
        source = HttpLogSource(served.url)
        paced = PacedSource(source, SourcePace(min_s=0.5, max_avg_s=0.1, cap_s=1.0), time.monotonic)
        started = time.monotonic()
        with pytest.raises(SlowSourceError, match="slow source abandoned") as cut:
            paced.entry_bundle(0, 256)
        took = time.monotonic() - started
    assert isinstance(cut.value.__cause__, LogUnreachableError)
    assert took < 2.5
    assert source.max_answer_s == 300.0  # the reader's own limit is restored
