"""After a signing key is revoked for compromise, a wallet's refresh must replace what
stations now refuse.

Over real HTTP: GD's issuer, GD's and MO's ledger nodes with their witnesses, and a
station that syncs GD's quorum-cosigned log. A key administrator learns the active key
leaked a while ago: rotates, then revokes the old key for compromise from that time
(docs/issuer.md, "Keys"). Every credential that key signed and that was anchored after
the compromise time is refused at every station (`KEY_COMPROMISED`; on a compact
station, everything the key signed). The threat model promises such residents "a new
credential at their next refresh". Before, the issuer answered the refresh with the same
credential (still green, not near its expiry, so "unchanged"): the resident stood
refused at the border with no way out until the routine refresh, up to 18 hours later.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from credential.issue import read_claims_unverified
from credential.presentation import make_presentation
from credential.reasons import Reason
from credential.verdict import Decision
from credential.verify import verify_presentation
from issuer import keymgmt
from issuer.app import create_app, stop_app
from issuer.context import ManualClock
from issuer.testing import device_header, enrol_directly, new_device, serve
from ledger.clients.sync import SyncClient, SyncedTrustState
from ledger.log.consortium import load_consortium
from tests.support.issuer_joint import joint_world, wait_for

pytestmark = pytest.mark.slow  # two regions over HTTP, a few seconds each


def _verdict(station_db: Path, jws: str, device) -> object:  # type: ignore[no-untyped-def]
    trust = SyncedTrustState(station_db)
    try:
        return verify_presentation(make_presentation(jws, device, time.time()), trust, time.time())
    finally:
        trust.close()


@pytest.mark.parametrize("group_commit", [True, False], ids=["group-commit", "plain"])
def test_refresh_after_key_compromise_replaces_the_refused_credential(
    tmp_path: Path, group_commit: bool
) -> None:
    clock = ManualClock(time.time() - 120)  # GD's issuer clock, kept on real time below
    with joint_world(tmp_path, clocks={"GD": clock}) as world:
        gd = world.regions["GD"]
        clock.t = time.time()
        device = new_device()
        enrolled = enrol_directly(gd.ctx, "G10000001", device)
        leaked = enrolled.issued.credential.kid
        leaked_since = enrolled.issued.credential.issued_at - 1  # before its anchor
        gd.anchor_all()
        clock.t = time.time()
        keymgmt.rotate_key(gd.ctx)
        keymgmt.revoke_key(gd.ctx, leaked, compromised_at=leaked_since)
        gd.anchor_all()
        station_db = tmp_path / "station.db"
        station = SyncClient(load_consortium(world.consortium_path), station_db)

        def synced(kid: str) -> bool:
            station.sync("GD")
            trust = SyncedTrustState(station_db)
            try:
                key = trust.key("GD", kid)
                return key is not None and (kid != leaked or key.compromised_at is not None)
            finally:
                trust.close()

        wait_for(lambda: synced(leaked), "the station to sync the compromise")
        before = _verdict(station_db, enrolled.issued.credential.jws, device)
        assert before.reasons == (Reason.KEY_COMPROMISED,)  # type: ignore[attr-defined]

        # The resident, refused at the border, refreshes the wallet.
        app = create_app(
            gd.ctx.config.replace(group_commit=group_commit), context=gd.ctx, start_workers=False
        )
        try:
            with serve(app) as issuer:
                clock.t = time.time()
                hdr = device_header(device, enrolled.holder_id, "GET", "/v1/credential")
                r = requests.get(
                    f"{issuer.url}/v1/credential", headers={"Authorization": hdr}, timeout=30
                )
                assert r.status_code == 200, r.text
                jws = r.json()["credential"]
                # The same header again (a wallet's retry) answers from the read path.
                again = requests.get(
                    f"{issuer.url}/v1/credential", headers={"Authorization": hdr}, timeout=30
                )
                assert again.status_code == 200, again.text
                assert again.json()["credential"] == jws
        finally:
            stop_app(app)
        assert read_claims_unverified(jws).kid != leaked, "the refresh handed back the void code"
        gd.anchor_all()
        fresh_kid = read_claims_unverified(jws).kid
        wait_for(lambda: synced(fresh_kid), "the station to sync the new key")

        def admitted() -> bool:
            station.sync("GD")
            return _verdict(station_db, jws, device).decision is Decision.ADMIT  # type: ignore[attr-defined]

        wait_for(admitted, "the refreshed credential to be admitted")
        station.close()
