"""An attacker without a key asks the public enrolment endpoints, over real HTTP,
whether a document number belongs to a resident. The answers for a resident's number
and for a number nobody holds are the same (status and body); nothing is delivered
for the unknown number, and the rate limits count both alike."""

from __future__ import annotations

from pathlib import Path

import requests

from issuer.app import create_app, stop_app
from issuer.testing import device_key_text, make_context, new_device, serve

RESIDENT = "G10000001"  # in the demo data
NOBODY = "G99999999"


def test_enrolment_endpoints_do_not_tell_whether_a_document_number_is_a_residents(
    tmp_path: Path,
) -> None:
    ctx = make_context(tmp_path, attempts_per_addr=100, code_requests_per_addr=100)
    app = create_app(ctx.config, context=ctx, start_workers=False)
    try:
        with serve(app) as issuer:

            def enrol(doc: str) -> requests.Response:
                return requests.post(
                    f"{issuer.url}/v1/enrolment",
                    json={
                        "document_number": doc,
                        "code": "12345678",
                        "device_key": device_key_text(new_device()),
                    },
                    timeout=10,
                )

            # Before any code: the resident and nobody look alike.
            a, b = enrol(RESIDENT), enrol(NOBODY)
            assert (a.status_code, a.json()) == (b.status_code, b.json())
            assert a.status_code == 401 and a.json()["error"] == "code_expired"

            def ask(doc: str) -> requests.Response:
                return requests.post(
                    f"{issuer.url}/v1/enrolment/code", json={"document_number": doc}, timeout=10
                )

            a, b = ask(RESIDENT), ask(NOBODY)
            assert (a.status_code, a.json()) == (b.status_code, b.json())
            assert a.status_code == 202
            sent = ctx.delivery.sent  # type: ignore[union-attr]
            assert RESIDENT in sent and NOBODY not in sent
            # The per-document limit holds for the unknown number as for the resident.
            codes = [ask(NOBODY).status_code for _ in range(ctx.config.code_requests_per_doc)]
            assert codes[-1] == 429, codes
    finally:
        stop_app(app)
        ctx.dispose()
