"""Checklist step 7c on a full-mode view: anchored, not anchored, not yet anchored."""

from __future__ import annotations

import pytest

from credential.errors import NotAnchoredError, NotYetAnchoredError
from credential.issue import credential_digest
from credential.presentation import make_presentation
from credential.verdict import Decision, Reason, StationPolicy, describe
from credential.verify import (
    ANCHOR_GRACE_S,
    CLOCK_SKEW_LEEWAY_S,
    check_presentation,
    verify_presentation,
)
from tests.credential.conftest import World
from tests.credential.test_verify import denied_for


@pytest.fixture()
def full(world: World) -> World:
    world.trust.full_anchor_regions.add("GD")
    return world


def test_anchored_credential_is_admitted(full: World) -> None:
    jws = full.credential()
    full.trust.anchors[("GD", credential_digest(jws))] = full.now - 3000
    assert verify_presentation(
        make_presentation(jws, full.device, full.now), full.trust, full.now
    ).admitted


def test_credential_absent_from_a_full_view_is_not_anchored(full: World) -> None:
    text = make_presentation(full.credential(), full.device, full.now)
    denied_for(full, text, Reason.NOT_ANCHORED)
    with pytest.raises(NotAnchoredError):
        check_presentation(text, full.trust, full.now)
    assert "ledger" in describe(Reason.NOT_ANCHORED)


def test_credential_newer_than_the_view_is_not_yet_anchored(full: World) -> None:
    synced = full.trust.sync_times["GD"]
    jws = full.credential(issued_at=synced - ANCHOR_GRACE_S + 1, not_before=synced - 10)
    text = make_presentation(jws, full.device, full.now)
    denied_for(full, text, Reason.NOT_YET_ANCHORED)
    with pytest.raises(NotYetAnchoredError):
        check_presentation(text, full.trust, full.now)
    lenient = StationPolicy(on_revocation_unknown=Decision.MANUAL_CHECK)
    v = verify_presentation(text, full.trust, full.now, policy=lenient)
    assert v.decision is Decision.MANUAL_CHECK and v.reasons == (Reason.NOT_YET_ANCHORED,)


def test_a_view_that_cannot_tell_skips_the_anchor_check(world: World) -> None:
    """Neither every anchor nor the anchored indices known (a fixture, a view synced
    before format 2): nothing to check against."""
    text = make_presentation(world.credential(), world.device, world.now)
    assert verify_presentation(text, world.trust, world.now).admitted


def test_compact_view_refuses_a_status_index_never_anchored(world: World) -> None:
    world.trust.anchored_indices["GD"] = {1, 2, 3}
    text = make_presentation(world.credential(status_index=9), world.device, world.now)
    denied_for(world, text, Reason.NOT_ANCHORED)
    ok = make_presentation(world.credential(status_index=2), world.device, world.now)
    assert verify_presentation(ok, world.trust, world.now).admitted


@pytest.mark.parametrize("mode", ["full", "compact"])
def test_off_ledger_code_with_a_future_iat_is_not_passed_off_as_not_yet_anchored(
    world: World, mode: str
) -> None:
    """Whoever holds a registered signing key (a dishonest region, or a thief before the
    compromise is known) signs a code that never reaches the log, claiming it was
    issued a week from now, valid from now. A station that knows the log (every anchor,
    or the anchored indices) took it for one issued after its view: `NOT_YET_ANCHORED`,
    for as long as the claimed `iat` stayed ahead, so a station whose policy sends
    unknown states to a manual check showed staff a green code to check by eye instead
    of refusing an off-ledger one. An honest issuer's `iat` is its `nbf`: an `iat`
    ahead of the station's clock beyond the leeway is refused like a future `nbf`."""
    if mode == "full":
        world.trust.full_anchor_regions.add("GD")
    else:
        world.trust.anchored_indices["GD"] = {1, 2, 3}
    jws = world.credential(
        status_index=9, issued_at=world.now + 7 * 86_400, not_before=world.now - 10
    )
    text = make_presentation(jws, world.device, world.now)
    lenient = StationPolicy(on_revocation_unknown=Decision.MANUAL_CHECK)
    v = verify_presentation(text, world.trust, world.now, policy=lenient)
    assert v.decision is Decision.DENY and v.reasons == (Reason.NOT_YET_VALID,)
    # An honest code issued at the edge of the leeway is still taken as it comes.
    edge = world.credential(
        status_index=2,
        issued_at=world.now + CLOCK_SKEW_LEEWAY_S,
        not_before=world.now + CLOCK_SKEW_LEEWAY_S,
    )
    v = verify_presentation(make_presentation(edge, world.device, world.now), world.trust,
                            world.now, policy=lenient)  # fmt: skip
    assert Reason.NOT_YET_VALID not in v.reasons
