"""The temporal shard schedule: which shard an expiry belongs to, shard origins as a
parse/render pair, and the open → frozen → droppable life of a shard."""

from __future__ import annotations

import pytest

from ledger.log.shards import ShardError, ShardSchedule, ShardState

DAY = 86_400
EPOCH = 1_800_000_000
SCHEDULE = ShardSchedule("gd.hb.test/log", DAY, EPOCH)


def test_credentials_fall_into_the_shard_of_their_expiry() -> None:
    assert SCHEDULE.shard_for(EPOCH).number == 0
    assert SCHEDULE.shard_for(EPOCH + DAY - 1).number == 0
    rolled = SCHEDULE.shard_for(EPOCH + DAY)  # one second later: the next shard
    assert rolled.number == 1 and rolled.start == EPOCH + DAY and rolled.end == EPOCH + 2 * DAY
    assert rolled.origin == "gd.hb.test/log/1"


def test_shard_origin_round_trips_and_garbage_is_refused() -> None:
    for n in (0, 1, 17, 10_000):
        assert SCHEDULE.parse_origin(SCHEDULE.shard(n).origin) == SCHEDULE.shard(n)
    for bad in ("gd.hb.test/log", "gd.hb.test/log/", "gd.hb.test/log/01", "gd.hb.test/log/-1",
                "mo.hb.test/log/1", "gd.hb.test/log/1x", "gd.hb.test/log/1/2"):  # fmt: skip
        with pytest.raises(ShardError):
            SCHEDULE.parse_origin(bad)


def test_shard_is_open_then_frozen_then_droppable() -> None:
    shard = SCHEDULE.shard(3)
    grace = 60
    assert SCHEDULE.state(shard, shard.start - 1, grace) is ShardState.FUTURE
    assert SCHEDULE.state(shard, shard.start, grace) is ShardState.OPEN
    assert SCHEDULE.state(shard, shard.end, grace) is ShardState.FROZEN
    assert SCHEDULE.state(shard, shard.end + grace - 1, grace) is ShardState.FROZEN
    assert SCHEDULE.state(shard, shard.end + grace, grace) is ShardState.DROPPABLE


def test_live_shards_cover_every_expiry_a_new_credential_can_have() -> None:
    now = EPOCH + 5 * DAY + 3_600
    live = SCHEDULE.live(now, DAY)
    assert [s.number for s in live] == [5, 6]
    for exp in (now, now + DAY // 2, now + DAY):
        assert SCHEDULE.shard_for(exp) in live


@pytest.mark.parametrize(
    ("origin", "period", "epoch"),
    [("", DAY, 0), ("a b", DAY, 0), ("o", 60, 0), ("o", 400 * DAY, 0), ("o", DAY, -1)],
)
def test_bad_schedules_are_refused(origin: str, period: int, epoch: int) -> None:
    with pytest.raises(ShardError):
        ShardSchedule(origin, period, epoch)


def test_expiry_before_the_epoch_is_refused() -> None:
    with pytest.raises(ShardError):
        SCHEDULE.shard_for(EPOCH - 1)
