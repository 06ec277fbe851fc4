"""A quiet night at the border, over real HTTP (two regions, nodes, witnesses, mirrors).

Nothing is issued for hours; a station syncs once and then loses the network. With the
station policy's default `max_sync_age_s` (6 h: credential.verdict), the documented
verdicts hold: 5 h after its last sync it still admits a valid code (and says how old
its view is); 7 h after, the revocation state is unknown and it denies
(`revocation_unknown`, docs/verifier.md), whatever the code. The station's clock is
moved instead of sleeping: verification is a pure function of the reference time.
"""

from __future__ import annotations

import time

from credential.presentation import make_presentation
from credential.verdict import DEFAULT_MAX_SYNC_AGE_S, Decision, Reason, StationPolicy
from credential.verify import verify_presentation
from ledger.clients.sync import RegionStatus
from tests.ledger.joint.test_joint_liveness import credential_of, live
from tests.support.joint_world import World, cosigned_by, wait_for

__all__ = ["live"]  # the fixture, imported so pytest finds it here

HOUR_S = 3600


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
