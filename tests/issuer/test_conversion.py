"""Cross-region conversion over HTTP: a GD presentation shown to MO's issuer becomes an
MO credential bound to the same device key; replayed, revoked, forged and same-region
presentations are refused with their reason."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from credential.issue import read_claims_unverified
from credential.keys import SigningAlg, es256_raw_signature
from credential.presentation import make_presentation, parse_presentation, render_presentation
from credential.trust import InMemoryTrustState, RegisteredKey
from issuer.app import create_app
from issuer.context import IssuerContext
from issuer.conversion import StaticTrustSource
from issuer.models import SigningKeyRow
from issuer.testing import enrol_directly, make_context, new_device, serve


def trust_of(ctx: IssuerContext) -> InMemoryTrustState:
    """What MO's synced view of GD's log would hold: GD's registered keys, fresh."""
    state = InMemoryTrustState()
    with ctx.sessions() as s:
        for k in s.query(SigningKeyRow).all():
            state.add_key(
                RegisteredKey(
                    ctx.region,
                    k.kid,
                    SigningAlg(k.alg),
                    k.public_key_der,
                    k.not_before - 60,
                    k.not_after,
                )
            )
    state.sync_times[ctx.region] = int(time.time())
    return state


@pytest.fixture()
def regions(tmp_path: Path):
    gd = make_context(tmp_path, "GD")
    mo = make_context(tmp_path, "MO")
    trust = trust_of(gd)
    app = create_app(mo.config, context=mo, trust=StaticTrustSource(trust), start_workers=False)
    with serve(app) as served:
        yield gd, mo, trust, served.url


def test_gd_presentation_converts_to_mo_credential_bound_to_same_device(regions) -> None:
    gd, _mo, _trust, url = regions
    device = new_device()
    enrolled = enrol_directly(gd, "G10000001", device)
    qr = make_presentation(enrolled.issued.credential.jws, device, time.time())
    r = requests.post(f"{url}/v1/conversion", json={"presentation": qr}, timeout=10)
    assert r.status_code == 201, r.text
    mo_claims = read_claims_unverified(r.json()["credential"])
    gd_claims = read_claims_unverified(enrolled.issued.credential.jws)
    assert mo_claims.region == "MO"
    assert mo_claims.holder_key == gd_claims.holder_key
    assert (mo_claims.masked_name, mo_claims.document_hint, mo_claims.colour) == (
        gd_claims.masked_name,
        gd_claims.document_hint,
        gd_claims.colour,
    )
    assert mo_claims.expires_at <= gd_claims.expires_at


def test_replayed_presentation_is_refused(regions) -> None:
    gd, _mo, _trust, url = regions
    device = new_device()
    enrolled = enrol_directly(gd, "G10000002", device)
    qr = make_presentation(enrolled.issued.credential.jws, device, time.time())
    assert (
        requests.post(f"{url}/v1/conversion", json={"presentation": qr}, timeout=10).status_code
        == 201
    )
    r = requests.post(f"{url}/v1/conversion", json={"presentation": qr}, timeout=10)
    assert r.status_code == 422
    assert r.json()["error"] == "presentation_refused"
    assert r.json()["reason"] == "proof_replayed"


def test_revoked_presentation_is_refused(regions) -> None:
    gd, _mo, trust, url = regions
    device = new_device()
    enrolled = enrol_directly(gd, "G10000003", device)
    trust.revoked.add(("GD", enrolled.issued.credential.status_index))
    qr = make_presentation(enrolled.issued.credential.jws, device, time.time())
    r = requests.post(f"{url}/v1/conversion", json={"presentation": qr}, timeout=10)
    assert r.status_code == 422 and r.json()["reason"] == "revoked"


def test_presentation_by_another_device_is_refused(regions) -> None:
    gd, _mo, _trust, url = regions
    device = new_device()
    enrolled = enrol_directly(gd, "G10000004", device)
    genuine = parse_presentation(
        make_presentation(enrolled.issued.credential.jws, device, time.time())
    )
    # A thief's phone signs the proof with its own key: same length, wrong signer.
    thief = new_device()
    stolen = replace(
        genuine, proof=es256_raw_signature(thief.sign(b"not the holder", ec.ECDSA(hashes.SHA256())))
    )
    qr = render_presentation(stolen)
    r = requests.post(f"{url}/v1/conversion", json={"presentation": qr}, timeout=10)
    assert r.status_code == 422 and r.json()["reason"] == "holder_proof_invalid"


def test_garbage_presentation_is_refused_not_crashing(regions) -> None:
    _gd, _mo, _trust, url = regions
    for junk in ["", "HB1:" + "A" * 50, "\u0000\uffff", "x" * 5000]:
        r = requests.post(f"{url}/v1/conversion", json={"presentation": junk}, timeout=10)
        assert r.status_code in (400, 422), (junk[:10], r.text)
        assert r.json()["error"] in ("bad_request", "presentation_refused")


def test_own_region_presentation_is_not_converted(regions, tmp_path: Path) -> None:
    _gd, mo, _trust, _url = regions
    device = new_device()
    enrolled = enrol_directly(mo, "M1000001", device)
    trust = trust_of(mo)
    app = create_app(mo.config, context=mo, trust=StaticTrustSource(trust), start_workers=False)
    with serve(app) as served:
        qr = make_presentation(enrolled.issued.credential.jws, device, time.time())
        r = requests.post(f"{served.url}/v1/conversion", json={"presentation": qr}, timeout=10)
    assert r.status_code == 422 and r.json()["reason"] == "same_region"
