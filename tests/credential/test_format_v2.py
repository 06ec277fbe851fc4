"""Format version 2: the QR discloses the colour, never the basis (vaccination / test /
recovery) or its date, and version 1 codes that did are refused, not half-read."""

from __future__ import annotations

import json
import zlib

import pytest

from credential.errors import MalformedError
from credential.issue import ZIP_DEFLATE, read_claims_unverified, split_jws
from credential.keys import b64url, es256_raw_signature
from credential.payload import (
    _RAW_DEFLATE_WBITS,
    PRESET_DICTIONARY,
    claims_from_json,
    claims_to_json,
    decode_payload,
    encode_payload,
)
from credential.presentation import (
    FORMAT_VERSION,
    QR_PREFIX,
    Presentation,
    make_presentation,
    parse_presentation,
    proof_signing_input,
    render_presentation,
    window_of,
)
from credential.reasons import Reason
from credential.verify import verify_presentation
from tests.credential.conftest import World

# The version 1 dictionary, kept here only to build a genuine version 1 payload.
V1_DICTIONARY = (
    b'"iss":"MO","hs":{"b":"a","c":"r"},"hs":{"b":"r","c":"y"},'
    b'{"cnf":{"jwk":{"crv":"P-256","kty":"EC","x":"","y":""}},"dh":"****","exp":17,'
    b'"hs":{"b":"v","c":"g","t":17},"iat":17,"iss":"GD","nbf":17,"nm":"*","sti":'
)


def v1_claims_json(world: World) -> bytes:
    """The claims of `world.claims()` as format version 1 rendered them (with a basis)."""
    obj = json.loads(claims_to_json(world.claims()))
    obj["hs"] = {"b": "r", "c": "g", "t": world.now - 40 * 86_400}  # recovered 40 days ago
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def test_claims_disclose_the_colour_and_nothing_about_the_basis(world: World) -> None:
    obj = json.loads(claims_to_json(world.claims()))
    assert obj["hs"] == {"c": "g"}
    assert set(obj) == {"cnf", "dh", "exp", "hs", "iat", "iss", "nbf", "nm", "sti"}


def test_version_2_claims_round_trip(world: World) -> None:
    claims = world.claims()
    assert decode_payload(encode_payload(claims), claims.kid) == claims
    jws = world.credential()
    assert read_claims_unverified(jws) == claims
    assert split_jws(jws).header.endswith(b'"zip":"HBZ2"}')


def test_presentation_round_trips_under_the_version_2_prefix(world: World) -> None:
    text = make_presentation(world.credential(), world.device, world.now)
    assert FORMAT_VERSION == 2 and text.startswith("HB2:") and QR_PREFIX == "HB2:"
    assert render_presentation(parse_presentation(text)) == text
    assert verify_presentation(text, world.trust, world.now).admitted


@pytest.mark.parametrize(
    "hs",
    [{"b": "v", "c": "g"}, {"c": "g", "t": 1}, {"b": "r", "c": "g", "t": 1}, {}],
)
def test_a_status_block_with_a_basis_is_refused(world: World, hs: dict[str, object]) -> None:
    obj = json.loads(claims_to_json(world.claims()))
    obj["hs"] = hs
    with pytest.raises(MalformedError):
        claims_from_json(json.dumps(obj).encode(), world.gd_kid)


def test_version_1_qr_prefix_is_unsupported(world: World) -> None:
    text = make_presentation(world.credential(), world.device, world.now)
    verdict = verify_presentation("HB1:" + text[4:], world.trust, world.now)
    assert verdict.reasons == (Reason.UNSUPPORTED_VERSION,)


def test_version_1_credential_reframed_as_version_2_is_refused(world: World) -> None:
    """A genuine issuer-signed v1 credential (zip HBZ1, basis in the claims) put into a
    v2 frame does not verify: its header names the old compression and its claims
    carry a basis. Nothing of it reaches staff."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    header = json.dumps(
        {"alg": "ES256", "kid": world.gd_kid, "zip": "HBZ1"}, separators=(",", ":")
    ).encode()
    c = zlib.compressobj(9, zlib.DEFLATED, _RAW_DEFLATE_WBITS, 9, zdict=V1_DICTIONARY)
    payload = c.compress(v1_claims_json(world)) + c.flush()
    signing_input = b64url(header).encode() + b"." + b64url(payload).encode()
    signature = es256_raw_signature(world.gd_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    jws = signing_input.decode() + "." + b64url(signature)
    from credential.issue import credential_digest

    window = window_of(world.now)
    proof = world.device.sign(
        proof_signing_input(credential_digest(jws), window, None), ec.ECDSA(hashes.SHA256())
    )
    text = render_presentation(
        Presentation(header, payload, signature, window % 256, False, es256_raw_signature(proof))
    )
    verdict = verify_presentation(text, world.trust, world.now)
    assert not verdict.admitted
    assert verdict.reasons == (Reason.MALFORMED,)
    assert verdict.display is None


def test_preset_dictionary_names_no_basis() -> None:
    assert b'"b"' not in PRESET_DICTIONARY and b'"t"' not in PRESET_DICTIONARY
    assert ZIP_DEFLATE == "HBZ2"
