"""Anchored before admitted: a full-mode station admits only what its region's
quorum-cosigned log holds.

Stations used to ADMIT a validly signed credential that was never anchored, or anchored
only on a branch no witness cosigned: a buggy or dishonest issuer could mint admissible
codes off the ledger. A full-mode station now DENYs those `not_anchored`; a credential
newer than its view prompts one on-demand sync (rate-limited) and is then admitted;
offline, the station's policy decides and the verdict says `not_yet_anchored`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from credential.claims import HealthClaims, StatusColour
from credential.issue import sign_credential
from credential.keys import SigningAlg, public_key_der
from credential.presentation import make_presentation
from credential.reasons import Reason
from credential.verdict import Decision, StationPolicy
from ledger.clients.sync import SyncedTrustState
from ledger.log.entries import CredentialAnchored
from tests.support.ledger_joint import MemoryLog, MemorySource, leaf_of
from tests.verifier.test_synced_station import (
    COSIGNED_AT,
    NOW,
    World,
    show,
    station_over,
)
from verifier.station import Station, presentation_verifier
from verifier.syncing import ON_DEMAND_VOUCHED_S, LedgerSyncer


@pytest.fixture()
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def unanchored(world: World, index: int, issued_at: int = COSIGNED_AT - 3600) -> str:
    """A credential signed with GD's registered key and never put on GD's log."""
    claims = HealthClaims(
        "GD", world.kid, index, issued_at, issued_at, issued_at + 7 * 86400,
        StatusColour.GREEN, "L** W**", "***0042",
        public_key_der(world.device),
    )  # fmt: skip
    return sign_credential(claims, world.issuer, SigningAlg.ES256)


def test_credential_minted_off_the_ledger_is_denied_not_anchored(world: World) -> None:
    station, syncer, trust = station_over(world)
    anchored = world.credential(21)
    assert syncer.sync().ok
    assert trust.anchors_known("GD")
    assert show(station, make_presentation(anchored, world.device, NOW), 0.0).admitted
    verdict = show(station, make_presentation(unanchored(world, 22), world.device, NOW), 1.0)
    assert (verdict.decision, verdict.reasons) == (Decision.DENY, (Reason.NOT_ANCHORED,))


def test_credential_anchored_only_on_an_uncosigned_fork_is_denied(world: World) -> None:
    """A branch of GD's log that MO's witness never cosigned does not reach the
    station: its anchor is not in the view, and the code is not admitted."""
    world.credential(23)  # the honest log the witnesses cosign
    station, syncer, _ = station_over(world)
    assert syncer.sync().ok
    fork = MemoryLog(world.gd, list(world.logs["GD"].leaves))
    jws = unanchored(world, 24)
    from credential.issue import credential_digest

    fork.leaves.append(leaf_of(CredentialAnchored("GD", credential_digest(jws), 24, world.kid, 0)))
    world.sources["GD"] = [MemorySource(fork, [world.gd], name="fork", timestamp=COSIGNED_AT + 30)]
    verdict = show(station, make_presentation(jws, world.device, NOW), 0.0)
    assert verdict.decision is Decision.DENY and verdict.reasons == (Reason.NOT_ANCHORED,)


def test_fresh_credential_newer_than_the_view_is_admitted_after_an_on_demand_sync(
    world: World,
) -> None:
    station, syncer, _ = station_over(world)
    assert syncer.sync().ok
    fresh = world.credential(25, issued_at=COSIGNED_AT + 20)  # anchored after the sync
    for s in world.sources["GD"]:
        s.timestamp = COSIGNED_AT + 30
    (event,) = station.process(_frame(make_presentation(fresh, world.device, NOW), 0.0))
    assert event.synced and event.verdict.admitted


def test_fresh_credential_at_an_offline_station_follows_the_policy(world: World) -> None:
    station, syncer, trust = station_over(world)
    assert syncer.sync().ok
    fresh = world.credential(26, issued_at=COSIGNED_AT + 20)
    world.set_down(True)
    qr = make_presentation(fresh, world.device, NOW)
    verdict = show(station, qr, 0.0)
    assert (verdict.decision, verdict.reasons) == (Decision.DENY, (Reason.NOT_YET_ANCHORED,))
    lenient = Station(
        verify=presentation_verifier(
            lambda: trust, StationPolicy(on_revocation_unknown=Decision.MANUAL_CHECK)
        ),
        syncer=syncer,
        clock=lambda f: NOW + f.timestamp,
    )
    checked = show(lenient, make_presentation(fresh, world.device, NOW + 31), 31.0)
    assert checked.decision is Decision.MANUAL_CHECK
    assert checked.reasons == (Reason.NOT_YET_ANCHORED,)


def test_on_demand_syncs_are_rate_limited(world: World, tmp_path: Path) -> None:
    t = [NOW]
    calls: list[str | None] = []

    class Client:
        def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
            self.inner = inner

        def sync(self, region, progress=None):  # type: ignore[no-untyped-def]
            calls.append(region)
            return self.inner.sync(region, progress=progress)

        def close(self) -> None:
            self.inner.close()

    syncer = LedgerSyncer(
        world.consortium,
        world.db,
        client_factory=lambda c, p: Client(world.client(c, p)),
        clock=lambda: t[0],
    )
    # Codes signed by a registered key and newer than the view (vouched): one sync per
    # ON_DEMAND_VOUCHED_S at most.
    assert syncer.sync_now("GD", vouched=True)
    assert not syncer.sync_now("GD", vouched=True)  # within the interval: no sync
    t[0] += ON_DEMAND_VOUCHED_S
    assert syncer.sync_now("GD", vouched=True)
    assert calls == ["GD", "GD"]


def test_compact_view_does_not_claim_to_know_every_anchor(tmp_path: Path) -> None:
    import sqlite3

    from ledger.clients.sync import _connect

    db = tmp_path / "compact.db"
    conn: sqlite3.Connection = _connect(db)
    conn.execute("INSERT INTO log_state VALUES ('GD', 'o', 5, ?, ?, NULL, 1)", (b"\0" * 32, b""))
    conn.close()
    state = SyncedTrustState(db)
    assert not state.anchors_known("GD") and not state.anchors_known("MO")
    state.close()


def _frame(text: str, t: float):  # type: ignore[no-untyped-def]
    from verifier.frames import Frame
    from verifier.synth import qr_image

    return Frame(qr_image(text), t, int(t))
