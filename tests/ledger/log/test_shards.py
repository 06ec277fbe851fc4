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


# -- the plan, the frozen marker and the shard's own rule ------------------------------

from ledger.log.entries import (  # noqa: E402
    CredentialAnchored,
    CredentialRevoked,
    RevocationReason,
    TimestampedEntry,
    encode_entry,
)
from ledger.log.shards import (  # noqa: E402
    FREEZE_LEEWAY_S,
    MAX_TRACKED_SHARDS,
    MIN_GRACE_S,
    SHARD_FROZEN_RULE,
    TRACKING_MARGIN_S,
    WRONG_SHARD_RULE,
    ShardPlan,
    ShardRuleError,
    check_leaf,
    find_frozen,
    render_frozen_line,
)

PLAN = ShardPlan(SCHEDULE, grace_s=600, max_validity_s=2 * DAY)


def test_tracked_shards_run_from_the_oldest_not_droppable_to_the_furthest_expiry() -> None:
    now = EPOCH + 5 * DAY + 100  # shard 4 ended 100 s ago: frozen, not yet droppable
    assert [s.number for s in PLAN.tracked(now)] == [4, 5, 6, 7]
    later = EPOCH + 5 * DAY + 600  # grace over: shard 4 is droppable
    assert PLAN.state(SCHEDULE.shard(4), later) is ShardState.DROPPABLE
    assert [s.number for s in PLAN.tracked(later)] == [5, 6, 7]
    assert [s.number for s in PLAN.tracked(later, margin_s=60)] == [4, 5, 6, 7]
    assert [s.number for s in PLAN.tracked(EPOCH - 10 * DAY)] == [0]


def test_frozen_line_round_trips_and_malformed_ones_are_refused() -> None:
    shard = SCHEDULE.shard(7)
    line = render_frozen_line(shard)
    assert find_frozen(["healthbridge/revocations abc", line]) == (7, shard.end)
    assert find_frozen(["healthbridge/revocations abc"]) is None
    for bad in (["healthbridge/frozen 7"], ["healthbridge/frozen 07 1"], [line, line],
                ["healthbridge/frozen x y"]):  # fmt: skip
        with pytest.raises(ShardError):
            find_frozen(bad)


def _leaf(entry: object, at_s: int) -> TimestampedEntry:
    return TimestampedEntry(at_s * 1000, encode_entry(entry))  # type: ignore[arg-type]


def test_anchor_outside_its_shard_period_is_refused_as_wrong_shard() -> None:
    shard = SCHEDULE.shard(2)
    ok = CredentialAnchored("GD", b"\x01" * 32, 1, "kid", shard.start)
    check_leaf(shard, _leaf(ok, shard.start - DAY))
    late = CredentialAnchored("GD", b"\x01" * 32, 1, "kid", shard.end)
    with pytest.raises(ShardRuleError) as e:
        check_leaf(shard, _leaf(late, shard.start - DAY))
    assert e.value.rule == WRONG_SHARD_RULE
    # Revocations carry no expiry: the ordinary rules bind them (not_anchored).
    check_leaf(shard, _leaf(CredentialRevoked("GD", 1, RevocationReason.UNSPECIFIED, 0),
                            shard.start))  # fmt: skip


def test_leaf_logged_after_the_shard_froze_is_refused() -> None:
    shard = SCHEDULE.shard(2)
    ok = CredentialAnchored("GD", b"\x01" * 32, 1, "kid", shard.start)
    check_leaf(shard, _leaf(ok, shard.end + FREEZE_LEEWAY_S - 1))
    with pytest.raises(ShardRuleError) as e:
        check_leaf(shard, _leaf(ok, shard.end + FREEZE_LEEWAY_S))
    assert e.value.rule == SHARD_FROZEN_RULE


def test_plan_spanning_more_shards_than_anyone_follows_is_refused() -> None:
    """A station follows every tracked shard as a log of its own: the plan bounds how
    many there can be (MAX_TRACKED_SHARDS), whatever the clock and margin."""
    hour = ShardSchedule("gd.hb.test/log", 3_600, EPOCH)
    with pytest.raises(ShardError, match="at most"):
        ShardPlan(hour, grace_s=7 * DAY, max_validity_s=30 * DAY)
    widest = ShardPlan(hour, grace_s=300, max_validity_s=20 * DAY)
    assert widest.max_tracked(TRACKING_MARGIN_S) <= MAX_TRACKED_SHARDS
    for now in range(EPOCH, EPOCH + 2 * 3_600, 599):
        assert len(widest.tracked(now, TRACKING_MARGIN_S)) <= widest.max_tracked(TRACKING_MARGIN_S)


def test_grace_shorter_than_the_verifiers_leeway_is_refused() -> None:
    """A credential expiring just before its shard's end still passes a station for the
    clock-skew leeway after `exp`; its shard's revocations must outlive that."""
    from credential.verify import CLOCK_SKEW_LEEWAY_S

    assert MIN_GRACE_S >= CLOCK_SKEW_LEEWAY_S
    with pytest.raises(ShardError, match="grace"):
        ShardPlan(SCHEDULE, grace_s=0, max_validity_s=DAY)
    plan = ShardPlan(SCHEDULE, grace_s=MIN_GRACE_S, max_validity_s=DAY)
    shard = SCHEDULE.shard(0)
    last_admitted = shard.end - 1 + CLOCK_SKEW_LEEWAY_S - 1  # now - leeway < exp
    assert plan.state(shard, last_admitted) is not ShardState.DROPPABLE
