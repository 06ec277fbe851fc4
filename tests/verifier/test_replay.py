"""One replay memory per checkpoint: a screenshot admitted at lane A is refused at lane B.

Each lane used to keep its own memory, so the same QR passed at the next lane a second
later. Lanes now share a real Redis (started by the test session on loopback) through
SET NX PX; a lone station keeps its own memory; an unreachable Redis falls back to the
lane's memory and the kiosk says so.
"""

from __future__ import annotations

import threading

import pytest
import redis

from credential.errors import ProofReplayedError
from credential.verdict import Decision, Reason
from tests.conftest import RedisServer
from tests.verifier.conftest import T0, Mint
from verifier.config import StationConfig, parse_config, render_config
from verifier.errors import StationConfigError
from verifier.kiosk import KioskState
from verifier.replay import (
    KEY_PREFIX,
    LocalReplayGuard,
    SharedReplayGuard,
    replay_guard_for,
)
from verifier.station import presentation_verifier


def lane(mint: Mint, setting: str):  # type: ignore[no-untyped-def]
    guard = replay_guard_for(setting)
    return presentation_verifier(lambda: mint.trust, replay=guard), guard


def test_screenshot_admitted_at_one_lane_is_refused_at_the_next(mint: Mint, redis_url: str) -> None:
    qr = mint.present(mint.claims()).encode()
    lane_a, _ = lane(mint, redis_url)
    lane_b, _ = lane(mint, redis_url)
    assert lane_a(qr, T0, True).decision is Decision.ADMIT
    second = lane_b(qr, T0 + 1, True)
    assert second.decision is Decision.DENY and second.reasons == (Reason.PROOF_REPLAYED,)


def test_lanes_with_their_own_memory_each_admit_the_screenshot(mint: Mint) -> None:
    """The lone-station default: what each lane remembers is its own."""
    qr = mint.present(mint.claims()).encode()
    lane_a, guard = lane(mint, "memory")
    lane_b, _ = lane(mint, "memory")
    assert isinstance(guard, LocalReplayGuard) and not guard.status().shared
    assert lane_a(qr, T0, True).admitted and lane_b(qr, T0 + 1, True).admitted
    assert lane_a(qr, T0 + 2, True).reasons == (Reason.PROOF_REPLAYED,)


def test_set_if_absent_admits_exactly_one_of_many_lanes_at_once(mint: Mint, redis_url: str) -> None:
    qr = mint.present(mint.claims()).encode()
    lanes = [lane(mint, redis_url)[0] for _ in range(8)]
    barrier = threading.Barrier(len(lanes))
    results: list[Decision] = []

    def scan(verify) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        results.append(verify(qr, T0, True).decision)

    threads = [threading.Thread(target=scan, args=(v,)) for v in lanes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == sorted([Decision.ADMIT] + [Decision.DENY] * 7)


def test_shared_entries_expire_with_the_proof_window(redis_url: str) -> None:
    guard = replay_guard_for(redis_url)
    assert isinstance(guard, SharedReplayGuard)
    guard.check_and_record(b"\x01" * 32, expires_at=1000.0, now=910.0)
    client = redis.Redis.from_url(redis_url)
    ttl = client.pttl(KEY_PREFIX + ("01" * 32))
    assert 80_000 < ttl <= 90_000
    assert client.get(KEY_PREFIX + ("01" * 32)) == b"1"  # a hash only: nothing personal
    other = replay_guard_for(redis_url)
    with pytest.raises(ProofReplayedError):
        other.check_and_record(b"\x01" * 32, expires_at=1000.0, now=911.0)


def test_unreachable_redis_falls_back_to_local_memory_and_says_so(mint: Mint) -> None:
    server = RedisServer()
    try:
        guard = replay_guard_for(server.url)
        verify = presentation_verifier(lambda: mint.trust, replay=guard)
        assert verify(mint.present(mint.claims()).encode(), T0, True).admitted
        assert not guard.status().degraded
    finally:
        server.stop()
    qr = mint.present(mint.claims()).encode()
    assert verify(qr, T0, True).admitted  # the lane keeps working
    assert isinstance(guard, SharedReplayGuard) and guard.degraded
    again = verify(qr, T0 + 1, True)  # ...and still refuses a replay at this lane
    assert again.reasons == (Reason.PROOF_REPLAYED,)
    kiosk = KioskState(replay=guard.status).snapshot()
    assert kiosk["replay"]["degraded"] is True and "unreachable" in kiosk["replay"]["detail"]


def test_replay_setting_round_trips_and_is_validated() -> None:
    c = StationConfig(replay="redis://redis:6379/0")
    assert parse_config(render_config(c)).replay == "redis://redis:6379/0"
    legacy = render_config(StationConfig()).replace('replay = "memory"\n', "")
    assert parse_config(legacy).replay == "memory"
    with pytest.raises(StationConfigError, match="replay"):
        StationConfig(replay="http://example")
