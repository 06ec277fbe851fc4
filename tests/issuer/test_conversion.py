"""Cross-region conversion over HTTP: a GD presentation shown to MO's issuer becomes an
MO credential, bound to the wallet's own MO key when the presentation endorses it
(conversion challenge) and to the presented key otherwise; replayed, revoked, forged,
same-region and photographed presentations are refused with their reason."""

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
from tests.issuer.helpers import enrol_directly, make_context, new_device, serve


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


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def test_conversion_binds_the_wallet_key_for_this_region(regions) -> None:
    """The GD key endorses a new MO key through the conversion challenge: the MO
    credential names the MO key, so the two regions' codes share no device key."""
    from credential.keys import public_key_der
    from credential.presentation import conversion_challenge

    gd, _mo, _trust, url = regions
    device, mo_device = new_device(), new_device()
    mo_der = public_key_der(mo_device)
    enrolled = enrol_directly(gd, "G10000004", device)
    qr = make_presentation(
        enrolled.issued.credential.jws, device, time.time(), conversion_challenge(mo_der)
    )
    r = requests.post(
        f"{url}/v1/conversion",
        json={"presentation": qr, "device_key": _b64url(mo_der)},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    mo_claims = read_claims_unverified(r.json()["credential"])
    assert mo_claims.holder_key == mo_der
    assert mo_claims.holder_key != read_claims_unverified(enrolled.issued.credential.jws).holder_key
    # The MO credential is shown with the MO key, which the wallet holds.
    make_presentation(r.json()["credential"], mo_device, time.time())


def test_photographed_code_cannot_be_converted_to_the_photographers_key(regions) -> None:
    """Someone who photographs a resident's live code (no conversion challenge bound)
    and asks for it to be converted under their own key is refused."""
    from credential.keys import public_key_der

    gd, _mo, _trust, url = regions
    device, thief = new_device(), new_device()
    enrolled = enrol_directly(gd, "G10000005", device)
    photo = make_presentation(enrolled.issued.credential.jws, device, time.time())
    r = requests.post(
        f"{url}/v1/conversion",
        json={"presentation": photo, "device_key": _b64url(public_key_der(thief))},
        timeout=10,
    )
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "challenge_mismatch"


@pytest.mark.parametrize("bad", [123, "", "!!!", "A" * 300])
def test_malformed_conversion_device_key_is_a_400(regions, bad: object) -> None:
    gd, _mo, _trust, url = regions
    device = new_device()
    enrolled = enrol_directly(gd, "G10000006", device)
    qr = make_presentation(enrolled.issued.credential.jws, device, time.time())
    r = requests.post(
        f"{url}/v1/conversion", json={"presentation": qr, "device_key": bad}, timeout=10
    )
    assert r.status_code == 400, r.text


def test_a_conversion_of_a_conversion_is_refused(regions) -> None:
    """Lineage is one step deep: a third region's code converted from GD is not
    converted again by MO (its source would be lost)."""
    from credential.claims import HealthClaims, SourceRef, StatusColour
    from credential.issue import sign_credential
    from credential.keys import generate_private_key, key_id, public_key_der

    _gd, _mo, trust, url = regions
    hk = generate_private_key()
    der = public_key_der(hk)
    trust.add_key(RegisteredKey("HK", key_id(der), SigningAlg.ES256, der, 0))
    trust.sync_times["HK"] = int(time.time())
    device = new_device()
    now = int(time.time())
    claims = HealthClaims(
        "HK", key_id(der), 5, now - 60, now - 60, now + 3600, StatusColour.GREEN,
        "A*", "", public_key_der(device), SourceRef("GD", 1),
    )  # fmt: skip
    qr = make_presentation(sign_credential(claims, hk, SigningAlg.ES256), device, time.time())
    r = requests.post(f"{url}/v1/conversion", json={"presentation": qr}, timeout=10)
    assert r.status_code == 422 and r.json()["reason"] == "converted_credential"


def test_converted_credential_names_its_source(regions) -> None:
    from credential.claims import SourceRef

    gd, _mo, _trust, url = regions
    device = new_device()
    enrolled = enrol_directly(gd, "G10000005", device)
    qr = make_presentation(enrolled.issued.credential.jws, device, time.time())
    r = requests.post(f"{url}/v1/conversion", json={"presentation": qr}, timeout=10)
    assert r.status_code == 201, r.text
    src = read_claims_unverified(r.json()["credential"]).source
    assert src == SourceRef("GD", enrolled.issued.credential.status_index)
