"""A quiet night at the border, over real HTTP (two regions, nodes, witnesses, mirrors).

Nothing is issued for hours; a station syncs once and then loses the network. With the
station policy's default `max_sync_age_s` (6 h: credential.verdict), the documented
verdicts hold: 5 h after its last sync it still admits a valid code (and says how old
its view is); 7 h after, the revocation state is unknown and it denies
(`revocation_unknown`, docs/verifier.md), whatever the code. The station's clock is
moved instead of sleeping: verification is a pure function of the reference time.

And the nodes themselves, idle: they keep re-signing and the witnesses keep
cosigning on the timer (newer cosignature timestamps at the same size), without a row
more in any table, a byte more in the databases, or a thread or descriptor per round.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from credential.presentation import make_presentation
from credential.verdict import DEFAULT_MAX_SYNC_AGE_S, Decision, Reason, StationPolicy
from credential.verify import verify_presentation
from ledger.clients.sync import RegionStatus
from tests.ledger.joint.test_joint_liveness import cosigned_at, credential_of, live
from tests.support.joint_world import World, build_world, cosigned_by, shutdown, wait_for

__all__ = ["live"]  # the fixture, imported so pytest finds it here

HOUR_S = 3600
IDLE_INTERVAL_S = 0.2  # seconds between timed checkpoints in the idle scenario
IDLE_ROUNDS = 15  # timed rounds watched while nothing happens
IN_FLIGHT = 4  # request threads that may be busy at a sample (cosigning, syncing)


def test_station_offline_5_h_admits_and_7_h_denies_revocation_unknown(live: World) -> None:
    assert DEFAULT_MAX_SYNC_AGE_S == 6 * HOUR_S
    gd, mo = live.regions["GD"], live.regions["MO"]
    gd.register_key()
    now = int(time.time())
    jws, device = credential_of(gd, 5, now)
    wait_for(lambda: cosigned_by(gd, 2, 2), "GD size 2 cosigned by both")
    client, state = live.station()
    assert client.sync("GD").region("GD").status is RegionStatus.UPDATED
    # The network goes: every source of GD (its node, MO's mirror) is out of reach.
    gd.server.stop()
    mo.server.stop()
    assert client.sync("GD").region("GD").status is RegionStatus.FAILED
    synced = state.synced_at("GD")
    assert synced is not None
    policy = StationPolicy()  # the defaults a station ships with

    def at(t: int):  # type: ignore[no-untyped-def]
        return verify_presentation(make_presentation(jws, device, t), state, t, policy)

    five = at(synced + 5 * HOUR_S)
    assert five.decision is Decision.ADMIT, five.reasons
    assert five.sync_age_s is not None and 5 * HOUR_S <= five.sync_age_s < 6 * HOUR_S
    seven = at(synced + 7 * HOUR_S)
    assert seven.decision is Decision.DENY
    assert Reason.REVOCATION_UNKNOWN in seven.reasons


def _footprint(world: World) -> tuple[dict[str, int], int, int, int]:
    """Rows per (region, table), main database bytes, threads and open descriptors."""
    rows: dict[str, int] = {}
    size = 0
    for rid in world.regions:
        path = world.tmp / rid / "node.db"
        size += path.stat().st_size
        with sqlite3.connect(path) as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for t in tables:
                rows[f"{rid}.{t}"] = db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
    fds = len(os.listdir("/proc/self/fd"))
    return rows, size, threading.active_count(), fds


def test_idle_nodes_keep_cosigning_without_growing_rows_files_or_threads(tmp_path: Path) -> None:
    w = build_world(tmp_path, [("GD", False), ("MO", False)], "all", IDLE_INTERVAL_S)
    try:
        gd, mo = w.regions["GD"], w.regions["MO"]
        gd.register_key()
        mo.register_key()
        wait_for(lambda: cosigned_by(gd, 1, 2) and cosigned_by(mo, 1, 2), "both cosigned")
        time.sleep(4 * IDLE_INTERVAL_S)  # the first timed rounds settle
        before = _footprint(w)
        stamps = {rid: _cosigned_at(w, rid) for rid in w.regions}
        time.sleep(IDLE_ROUNDS * IDLE_INTERVAL_S)
        after = _footprint(w)
        # Cosigned again on the timer (newer timestamps), at the same size.
        for rid in w.regions:
            assert _cosigned_at(w, rid) > stamps[rid], rid
        assert after[0] == before[0]  # not one row more anywhere: no entry, no checkpoint
        assert after[1] == before[1]  # the main database files did not grow
        # No thread or descriptor per round: a leak would add one per round and region
        # (2 x IDLE_ROUNDS); a few may be serving a cosigning request at the sample.
        assert after[2] <= before[2] + IN_FLIGHT, (before[2], after[2])
        assert after[3] <= before[3] + 2 * IN_FLIGHT, (before[3], after[3])
    finally:
        shutdown(w)


def _cosigned_at(w: World, rid: str) -> int:
    return min(cosigned_at(w.regions[rid].checkpoint(), w, rid))
