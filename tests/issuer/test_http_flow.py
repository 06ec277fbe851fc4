"""The issuer over real HTTP next to a real ledger node (both werkzeug on loopback):
enrol -> fetch -> anchored on the log -> a status change revokes it on the log."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from credential.issue import credential_digest, read_claims_unverified
from issuer.app import create_app, stop_app
from issuer.testing import (
    device_header,
    device_key_text,
    ledger_node,
    make_context,
    new_device,
    serve,
)
from ledger.clients.client import LedgerClient
from ledger.log.entries import CredentialAnchored, CredentialRevoked
from ledger.testing import log_entries

DOC = "G10000001"


def wait_until(pred, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_enrol_fetch_anchor_and_status_change_revokes_on_log(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    with ledger_node(ctx, tmp_path) as node:
        cfg = ctx.config.replace(ledger_url=node.url, anchor_worker=True, anchor_interval_s=0.05)
        app = create_app(cfg, context=ctx)
        try:
            with serve(app) as issuer:
                r = requests.post(
                    f"{issuer.url}/v1/enrolment/code", json={"document_number": DOC}, timeout=10
                )
                assert r.status_code == 202, r.text
                assert "test delivery" in r.json()["delivery"]
                device = new_device()
                r = requests.post(
                    f"{issuer.url}/v1/enrolment",
                    json={
                        "document_number": DOC,
                        "code": ctx.delivery.sent[DOC],  # type: ignore[union-attr]
                        "device_key": device_key_text(device),
                    },
                    timeout=10,
                )
                assert r.status_code == 201, r.text
                enrolled = r.json()
                claims = read_claims_unverified(enrolled["credential"])
                assert claims.masked_name == "张*明" and claims.document_hint == "0001"
                assert enrolled["status"]["colour"] == "green"

                hdr = device_header(device, enrolled["holder_id"], "GET", "/v1/credential")
                r = requests.get(
                    f"{issuer.url}/v1/credential", headers={"Authorization": hdr}, timeout=10
                )
                assert r.status_code == 200, r.text
                assert r.json()["credential"] == enrolled["credential"]  # unchanged status

                client = LedgerClient(node.url, timeout=10)
                digest = credential_digest(enrolled["credential"])
                wait_until(
                    lambda: any(
                        isinstance(e, CredentialAnchored) and e.digest == digest
                        for e in log_entries(client)
                    )
                )

                # The health authority reports a positive test: the status turns red,
                # the outstanding credential is revoked on the log, the next fetch is red.
                token = ctx.keys.token(ctx.config.authority_token_path)
                r = requests.post(
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
                    timeout=10,
                )
                assert r.status_code == 200, r.text
                assert r.json()["revoked"] == 1
                wait_until(
                    lambda: any(
                        isinstance(e, CredentialRevoked) and e.status_index == claims.status_index
                        for e in log_entries(client)
                    )
                )
                hdr = device_header(
                    device, enrolled["holder_id"], "GET", "/v1/credential", ts=int(time.time()) + 1
                )
                r = requests.get(
                    f"{issuer.url}/v1/credential", headers={"Authorization": hdr}, timeout=10
                )
                assert r.status_code == 200, r.text
                assert r.json()["status"]["colour"] == "red"
                assert (
                    read_claims_unverified(r.json()["credential"]).status_index
                    > claims.status_index
                )
        finally:
            stop_app(app)


def test_wrong_code_and_bad_bodies_get_json_errors(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    app = create_app(ctx.config, context=ctx, start_workers=False)
    with serve(app) as issuer:
        requests.post(f"{issuer.url}/v1/enrolment/code", json={"document_number": DOC}, timeout=10)
        r = requests.post(
            f"{issuer.url}/v1/enrolment",
            json={
                "document_number": DOC,
                "code": "00000000x",
                "device_key": device_key_text(new_device()),
            },
            timeout=10,
        )
        assert r.status_code == 401 and r.json()["error"] == "wrong_code"
        r = requests.post(
            f"{issuer.url}/v1/enrolment",
            data=b"\xff\x00",
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert r.status_code == 400 and r.json()["error"] == "bad_request"
        r = requests.post(
            f"{issuer.url}/v1/enrolment/code", json={"document_number": "X9999999"}, timeout=10
        )
        # Answered as for a resident (no residency oracle: test_enrolment_oracle.py).
        assert r.status_code == 202 and "X9999999" not in ctx.delivery.sent  # type: ignore[union-attr]
        r = requests.get(
            f"{issuer.url}/v1/credential", headers={"Authorization": "HB-Device nope"}, timeout=10
        )
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        r = requests.get(f"{issuer.url}/v1/nowhere", timeout=10)
        assert r.status_code == 404 and r.json()["error"] == "not_found"
