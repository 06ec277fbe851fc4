"""A resident about to turn red races a refresh against the red record, on PostgreSQL.

Over real HTTP: the wallet's device-signed `GET /v1/credential` (with
`refresh_before_s` past the validity, so every fetch re-issues) and the health
authority's `POST /v1/records` reporting a positive test (or an admin's red status
override through the JSON API) arrive together. The test pins
the worst interleaving instead of hoping for it: its own connection holds a SHARE ROW
EXCLUSIVE lock on `credentials`, so the fetch stops at the insert of its fresh
credential, after it has read the status; the record is then posted; the lock is let
go once both requests wait on the database. Whatever order they commit in, no green
credential of that resident may stay active: either the record revokes the fresh one,
or the fetch reads red. (SQLite runs writers one at a time and cannot interleave.)
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, select, text

from issuer.admin import accounts_db
from issuer.admin.accounts import Role
from issuer.app import create_app, stop_app
from issuer.models import CredentialRow, Holder, Resident
from issuer.testing import device_header, enrol_directly, make_context, new_device, serve

pytestmark = pytest.mark.slow  # four PostgreSQL races, about 15 s

DOC = "G10000001"  # green in the demo data
WAIT_S = 10.0


def _waiting(engine, at_least: int) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_S
    with engine.connect() as c:
        while c.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one() < (
            at_least
        ):
            assert time.monotonic() < deadline, f"fewer than {at_least} requests waiting"
            time.sleep(0.02)
            c.rollback()


@pytest.mark.parametrize("turns_red", ["record", "override"])
@pytest.mark.parametrize("group_commit", [True, False], ids=["group-commit", "plain"])
def test_red_resident_refresh_racing_the_red_record_keeps_no_green_credential(
    tmp_path: Path, fresh_postgres_url: str, group_commit: bool, turns_red: str
) -> None:
    ctx = make_context(tmp_path, database_url=fresh_postgres_url, refresh_before_s=10 * 86_400)
    device = new_device()
    enrolled = enrol_directly(ctx, DOC, device)
    holder_id = enrolled.holder_id
    assert enrolled.issued.credential.colour == "green"
    accounts_db.create_account(
        ctx.sessions, "oper", "GD", frozenset({Role.OPERATOR}), "correct horse battery", 0
    )
    admin = {"Authorization": "Bearer " + accounts_db.issue_token(ctx.sessions, "oper", "t", 0)}
    app = create_app(ctx.config.replace(group_commit=group_commit), context=ctx)
    engine = create_engine(fresh_postgres_url)
    blocker = engine.connect()
    answers: dict[str, requests.Response] = {}
    try:
        with serve(app) as issuer:
            blocker.execute(text("LOCK TABLE credentials IN SHARE ROW EXCLUSIVE MODE"))

            def fetch() -> None:
                hdr = device_header(device, holder_id, "GET", "/v1/credential")
                answers["fetch"] = requests.get(
                    f"{issuer.url}/v1/credential", headers={"Authorization": hdr}, timeout=30
                )

            def record() -> None:
                if turns_red == "override":  # an admin sets the resident red
                    answers["record"] = requests.post(
                        f"{issuer.url}/v1/admin/regions/GD/status-overrides",
                        headers=admin,
                        json={"document_number": DOC, "colour": "red", "reason": "isolation"},
                        timeout=30,
                    )
                    return
                token = ctx.keys.token(ctx.config.authority_token_path)
                answers["record"] = requests.post(
                    f"{issuer.url}/v1/records",
                    headers={"Authorization": f"Bearer {token}"},
                    json={
                        "records": [
                            {
                                "document_number": DOC,
                                "kind": "test",
                                "result": "positive",
                                "at": int(time.time()) - 60,
                            }
                        ]
                    },
                    timeout=30,
                )

            threads = [threading.Thread(target=fetch)]
            threads[0].start()
            _waiting(engine, 1)  # the fetch read its status and waits to insert
            threads.append(threading.Thread(target=record))
            threads[1].start()
            _waiting(engine, 2)  # the record waits too (on the lock or the resident)
            blocker.rollback()
            for t in threads:
                t.join(WAIT_S)
            assert answers["record"].status_code in (200, 202), answers["record"].text
            assert answers["fetch"].status_code == 200, answers["fetch"].text
    finally:
        blocker.close()
        engine.dispose()
        stop_app(app)
    now = ctx.now()
    with ctx.sessions() as s:
        rows = s.scalars(
            select(CredentialRow)
            .join(Holder, Holder.id == CredentialRow.holder_pk)
            .join(Resident, Resident.id == Holder.resident_id)
            .where(Resident.document_number == DOC)
        ).all()
    green = [r.status_index for r in rows if r.colour == "green" and r.state == "active"]
    assert green == [], f"a red resident still holds active green credentials {green}"
    assert all(r.expires_at > now for r in rows if r.state == "active")
    ctx.dispose()
