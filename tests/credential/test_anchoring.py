"""Checklist step 7c on a full-mode view: anchored, not anchored, not yet anchored."""

from __future__ import annotations

import pytest

from credential.errors import NotAnchoredError, NotYetAnchoredError
from credential.issue import credential_digest
from credential.presentation import make_presentation
from credential.verdict import Decision, Reason, StationPolicy, describe
from credential.verify import ANCHOR_GRACE_S, check_presentation, verify_presentation
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
