"""A routine key rotation must not void what the retired key signed.

Over real HTTP: GD's issuer, GD's and MO's ledger nodes with their witnesses, and a
station that syncs GD's quorum-cosigned log. Credentials carry whole seconds (`iat`)
and a station refuses a credential whose `iat` is at or after its key's `retired_at`
(docs/credential-format.md §4, step 4). A rotation that retired the old key at the
second it ran therefore voided every credential that key had signed earlier in that
same second: a few hundred at the issuance rates of docs/performance.md, each refused
(`KEY_RETIRED`) at every station until its holder's next refresh, hours later.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select, text

from credential.issue import read_claims_unverified
from credential.presentation import make_presentation
from credential.reasons import Reason
from credential.verdict import Decision
from credential.verify import verify_presentation
from issuer import anchor, keymgmt
from issuer.app import create_app, stop_app
from issuer.context import ManualClock
from issuer.models import SigningKeyRow
from issuer.testing import (
    device_header,
    enrol_directly,
    ledger_node,
    make_context,
    new_device,
    serve,
)
from ledger.clients.sync import SyncClient, SyncedTrustState
from ledger.log.consortium import load_consortium
from tests.support.issuer_joint import joint_world, wait_for

pytestmark = pytest.mark.slow  # real HTTP and PostgreSQL, a few seconds each


def test_rotation_in_the_second_of_an_issuance_keeps_that_credential_admissible(
    tmp_path: Path,
) -> None:
    start = float(int(time.time()) - 60)
    clock = ManualClock(start)  # GD's issuer clock; the first key is made at `start`
    with joint_world(tmp_path, clocks={"GD": clock}) as world:
        gd = world.regions["GD"]
        clock.t = start + 30.2
        device = new_device()
        enrolled = enrol_directly(gd.ctx, "G10000001", device)
        old_kid = enrolled.issued.credential.kid
        clock.t = start + 30.7  # the same second: the rotation comes right after it
        change = keymgmt.rotate_key(gd.ctx)
        assert change.kid != old_kid
        gd.anchor_all()
        station = SyncClient(load_consortium(world.consortium_path), tmp_path / "station.db")

        def synced_rotation() -> bool:
            station.sync("GD")
            trust = SyncedTrustState(tmp_path / "station.db")
            try:
                key = trust.key("GD", old_kid)
                return key is not None and key.retired_at is not None
            finally:
                trust.close()

        wait_for(synced_rotation, "the station to sync the rotation")
        trust = SyncedTrustState(tmp_path / "station.db")
        try:
            qr = make_presentation(enrolled.issued.credential.jws, device, time.time())
            verdict = verify_presentation(qr, trust, time.time())
        finally:
            trust.close()
            station.close()
    assert Reason.KEY_RETIRED not in verdict.reasons
    assert verdict.decision is Decision.ADMIT, verdict.reasons


def _waiters(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as c:
        return int(c.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one())


@pytest.mark.parametrize("change", ["rotation", "compromise"])
@pytest.mark.parametrize("group_commit", [True, False], ids=["group-commit", "plain"])
def test_key_change_racing_a_fetch_never_leaves_a_credential_the_log_refuses(
    tmp_path: Path, fresh_postgres_url: str, group_commit: bool, change: str
) -> None:
    """On PostgreSQL: a wallet's fetch has chosen the signing key and is about to insert
    its fresh credential when a key administrator rotates (or revokes the key for a
    compromise found a minute ago). The test pins that interleaving: its own connection
    holds a SHARE ROW EXCLUSIVE lock on `credentials`, so the fetch stops at its insert;
    the key change runs; the lock is let go. Before, the key change committed at once
    and the fetch then committed a credential signed by the retired key behind the
    `KeyRevoked` entry: the node refused its anchor (`key_not_active`), the row was
    quarantined and the resident held a credential no station would ever find on the
    log. (After a compromise, stations refuse the credential anyway, anchored after the
    compromise time: the holder's next fetch replaces it,
    tests/issuer/test_refresh_after_key_compromise.py.)"""
    ctx = make_context(tmp_path, database_url=fresh_postgres_url, refresh_before_s=10 * 86_400)
    device = new_device()
    holder_id = enrol_directly(ctx, "G10000001", device).holder_id
    with ctx.sessions() as s:
        (old_kid,) = [k.kid for k in s.scalars(select(SigningKeyRow)) if k.state == "active"]
    app = create_app(ctx.config.replace(group_commit=group_commit), context=ctx)
    engine = create_engine(fresh_postgres_url)
    blocker = engine.connect()
    answers: dict[str, object] = {}
    try:
        with serve(app) as issuer, ledger_node(ctx, tmp_path) as node:
            blocker.execute(text("LOCK TABLE credentials IN SHARE ROW EXCLUSIVE MODE"))

            def fetch() -> None:
                hdr = device_header(device, holder_id, "GET", "/v1/credential")
                answers["fetch"] = requests.get(
                    f"{issuer.url}/v1/credential", headers={"Authorization": hdr}, timeout=30
                )

            def rotate() -> None:
                if change == "rotation":
                    answers["rotate"] = keymgmt.rotate_key(ctx)
                else:
                    answers["rotate"] = keymgmt.revoke_key(ctx, old_kid, ctx.now() - 60)

            fetching = threading.Thread(target=fetch)
            fetching.start()
            wait_for(lambda: _waiters(engine) >= 1, "the fetch to wait at its insert")
            rotating = threading.Thread(target=rotate)
            rotating.start()
            # Before: the rotation commits at once. Now: it waits for the fetch's key.
            wait_for(
                lambda: not rotating.is_alive() or _waiters(engine) >= 2,
                "the rotation to commit or to wait",
            )
            blocker.rollback()
            fetching.join(30)
            rotating.join(30)
            fetched = answers["fetch"]
            assert isinstance(fetched, requests.Response) and fetched.status_code == 200
            port = anchor.ClientLedgerPort(node.url, ctx.keys.writer_key(), 10)
            anchor.drain(ctx, port)
            refused = [(q.kind, q.error) for q in anchor.quarantined(ctx)]
            assert refused == [], f"the log refused {refused}"
        jws = fetched.json()["credential"]
        claims = read_claims_unverified(jws)
        with ctx.sessions() as s:
            old = s.get_one(SigningKeyRow, old_kid)
            assert old.retired_at is not None
            if claims.kid == old_kid:  # signed before the key change
                assert claims.issued_at < old.retired_at
    finally:
        blocker.close()
        engine.dispose()
        stop_app(app)
        ctx.dispose()
