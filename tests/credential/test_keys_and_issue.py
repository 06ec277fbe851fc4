"""Keys (thumbprints, PEM files) and issuing: claims <-> payload <-> JWS."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import zlib
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from credential.claims import HealthClaims, StatusColour
from credential.errors import ClaimsError, KeyFormatError, MalformedError, TooLargeError
from credential.issue import (
    credential_digest,
    read_claims_unverified,
    sign_credential,
    signing_kid,
    split_jws,
)
from credential.keys import (
    SigningAlg,
    generate_private_key,
    key_id,
    load_public_key_der,
    private_key_from_pem,
    private_key_to_pem,
    public_jwk,
    public_key_der,
    read_private_key,
    write_private_key,
)
from credential.payload import (
    MAX_INFLATED_BYTES,
    claims_from_json,
    claims_to_json,
    decode_payload,
    deflate,
    encode_payload,
    inflate,
)
from tests.credential.conftest import World

DEVICE = generate_private_key()


def test_key_id_is_the_rfc7638_thumbprint_truncated() -> None:
    key = generate_private_key()
    jwk = public_jwk(public_key_der(key))
    # RFC 7638 §3.2: required members only, lexicographic order, no whitespace.
    canonical = '{"crv":"P-256","kty":"EC","x":"' + jwk["x"] + '","y":"' + jwk["y"] + '"}'
    full = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=")
    assert key_id(public_key_der(key)) == full.decode()[:16]


def test_ed25519_key_id_uses_okp_members() -> None:
    key = generate_private_key(SigningAlg.EDDSA)
    jwk = public_jwk(public_key_der(key))
    assert set(jwk) == {"crv", "kty", "x"} and jwk["kty"] == "OKP"
    assert len(key_id(public_key_der(key))) == 16


def test_private_key_file_is_mode_0600_and_round_trips(tmp_path: Path) -> None:
    key = generate_private_key()
    path = tmp_path / "issuer.pem"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_private_key(path, key, passphrase=b"pw")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = read_private_key(path, passphrase=b"pw")
    assert public_key_der(again) == public_key_der(key)
    with pytest.raises(KeyFormatError):
        read_private_key(path, passphrase=b"wrong")


def test_pem_round_trip_for_both_algorithms() -> None:
    for alg in SigningAlg:
        key = generate_private_key(alg)
        assert public_key_der(private_key_from_pem(private_key_to_pem(key))) == public_key_der(key)


def test_other_curves_and_garbage_keys_are_refused() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(KeyFormatError):
        public_key_der(p384)
    with pytest.raises(KeyFormatError):
        load_public_key_der(b"\x30\x03garbage")
    with pytest.raises(KeyFormatError):
        private_key_from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


claims_strategy = st.builds(
    HealthClaims,
    region=st.from_regex(r"[A-Z]{2,8}", fullmatch=True),
    kid=st.from_regex(r"[A-Za-z0-9_-]{4,64}", fullmatch=True),
    status_index=st.integers(0, 2**40 - 1),
    issued_at=st.integers(0, 2**31),
    not_before=st.integers(0, 2**31),
    expires_at=st.integers(2**31, 2**33),
    colour=st.sampled_from(StatusColour),
    masked_name=st.text(min_size=1, max_size=32),
    document_hint=st.text(max_size=16),
    holder_key=st.just(public_key_der(DEVICE)),
)


@settings(max_examples=60, deadline=None)
@given(claims_strategy)
def test_claims_round_trip_through_the_payload(claims: HealthClaims) -> None:
    assert decode_payload(encode_payload(claims), claims.kid) == claims
    assert claims_from_json(claims_to_json(claims), claims.kid) == claims


def test_signed_credential_round_trips_and_has_canonical_header(world: World) -> None:
    for key in (world.gd_key, world.mo_key):
        region = "GD" if key is world.gd_key else "MO"
        kid = world.gd_kid if region == "GD" else world.mo_kid
        jws = world.credential(key, region=region, kid=kid)
        header = json.loads(split_jws(jws).header)
        assert header == {"alg": header["alg"], "kid": kid, "zip": "HBZ2"}
        assert read_claims_unverified(jws) == world.claims(region=region, kid=kid)
        assert credential_digest(jws) == hashlib.sha256(jws.encode()).digest()


def test_pyjwt_verifies_our_jws_with_the_pinned_algorithm(world: World) -> None:
    jws = world.credential()
    raw = jwt.api_jws.PyJWS().decode(
        jws,
        world.gd_key.public_key(),
        algorithms=["ES256"],  # type: ignore[union-attr]
    )
    assert inflate(raw) == claims_to_json(world.claims())
    with pytest.raises(zlib.error):  # a generic inflater needs the preset dictionary
        zlib.decompress(raw, -15)


def test_signing_under_a_kid_of_another_key_is_refused(world: World) -> None:
    with pytest.raises(ClaimsError):
        sign_credential(world.claims(kid=world.mo_kid), world.gd_key, SigningAlg.ES256)
    with pytest.raises(ClaimsError):
        sign_credential(world.claims(), world.gd_key, SigningAlg.EDDSA)


def test_remembered_key_id_still_refuses_a_kid_of_another_key(world: World) -> None:
    """The key id of a signing key is computed once and remembered (signing_kid); the
    check still binds the kid to the very key object that signs."""
    other = generate_private_key(SigningAlg.ES256)
    world.credential()  # gd_key's kid is now remembered
    assert signing_kid(world.gd_key) == world.gd_kid
    assert signing_kid(other) == key_id(public_key_der(other))
    with pytest.raises(ClaimsError):
        sign_credential(world.claims(), other, SigningAlg.ES256)  # gd's kid, other key
    with pytest.raises(ClaimsError):
        sign_credential(world.claims(kid=signing_kid(other)), world.gd_key, SigningAlg.ES256)


def test_decompression_bomb_is_refused_before_inflating_it_all() -> None:
    bomb = deflate(b"{" + b" " * 10_000_000 + b"}")
    assert len(bomb) < 20_000
    with pytest.raises(TooLargeError):
        inflate(bomb)
    with pytest.raises(TooLargeError):
        decode_payload(bomb, "kid0")


@pytest.mark.parametrize(
    "data",
    [
        b"",  # empty stream: truncated
        deflate(b"{}")[:-1],  # truncated
        deflate(b"{}") + b"extra",  # trailing garbage
        b"\xff\xff\xff",  # not DEFLATE
    ],
)
def test_broken_deflate_streams_are_malformed(data: bytes) -> None:
    with pytest.raises(MalformedError):
        inflate(data)


def test_inflate_accepts_exactly_the_limit() -> None:
    assert len(inflate(deflate(b"x" * MAX_INFLATED_BYTES))) == MAX_INFLATED_BYTES


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o.pop("sti"),
        lambda o: o.update(extra=1),
        lambda o: o.update(sti=True),
        lambda o: o.update(sti=-1),
        lambda o: o.update(iat="1"),
        lambda o: o.update(hs={"c": "x", "b": "v"}),
        lambda o: o.update(cnf={"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AA", "y": "AA"}}),
        lambda o: o.update(cnf={"jkt": "abc"}),
        lambda o: o.update(nm=""),
        lambda o: o.update(iss="gd"),
    ],
)
def test_malformed_claims_are_refused(world: World, mutate: object) -> None:
    obj = json.loads(claims_to_json(world.claims()))
    mutate(obj)  # type: ignore[operator]
    with pytest.raises(MalformedError):
        claims_from_json(json.dumps(obj).encode(), world.gd_kid)


def test_duplicate_json_members_are_refused(world: World) -> None:
    data = claims_to_json(world.claims())
    with pytest.raises(MalformedError):
        claims_from_json(data[:-1] + b',"sti":1}', world.gd_kid)


def test_non_utf8_claims_are_malformed(world: World) -> None:
    with pytest.raises(MalformedError):
        claims_from_json(b'{"nm":"\xff"}', world.gd_kid)
