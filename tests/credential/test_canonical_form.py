"""One credential, one signature, one digest; malformed headers and inputs typed.

Covers: ECDSA malleability (`s -> n - s`) on the issuer signature and on the holder
proof, which used to verify, change the credential digest and pass twice in one window
at one station; window tags wrapping at one byte (a screenshot 256 windows old used to
read as "another phone"); duplicate JWS header members (last one used to win);
`check_presentation(None)` (used to raise TypeError).
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from credential.errors import BadSignatureError, MalformedError
from credential.issue import credential_digest, split_jws
from credential.keys import (
    P256_HALF_ORDER,
    P256_ORDER,
    b64url,
    es256_der_signature,
    es256_raw_signature,
    is_low_s,
    low_s_raw,
)
from credential.presentation import (
    WINDOW_SECONDS,
    WINDOW_TAG_MODULUS,
    Presentation,
    make_presentation,
    parse_presentation,
    render_presentation,
)
from credential.verdict import Decision, Reason
from credential.verify import InMemoryReplayGuard, check_presentation, verify_presentation
from tests.credential.conftest import DAY, World
from tests.credential.test_verify import denied_for, forge


def _high_s(raw: bytes) -> bytes:
    s = int.from_bytes(raw[32:], "big")
    return raw[:32] + (P256_ORDER - s).to_bytes(32, "big")


def test_issued_es256_credentials_are_low_s(world: World) -> None:
    for i in range(40):  # about half of raw ECDSA signatures are high-s
        sig = split_jws(world.credential(status_index=i)).signature
        assert is_low_s(sig)


def test_wallet_proofs_are_low_s(world: World) -> None:
    jws = world.credential()
    for i in range(40):
        assert is_low_s(
            parse_presentation(make_presentation(jws, world.device, world.now + i)).proof
        )


def test_der_to_raw_normalises_high_s() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    raw = es256_raw_signature(key.sign(b"m", ec.ECDSA(hashes.SHA256())))
    high = _high_s(raw)
    assert not is_low_s(high) and is_low_s(raw)
    r, s = int.from_bytes(high[:32], "big"), int.from_bytes(high[32:], "big")
    assert es256_raw_signature(encode_dss_signature(r, s)) == raw
    assert low_s_raw(high) == raw and low_s_raw(raw) == raw
    assert int.from_bytes(raw[32:], "big") <= P256_HALF_ORDER


def test_malleated_issuer_signature_is_bad_signature(world: World) -> None:
    """The n - s twin verifies mathematically but would be a second digest of the same
    credential (unmatchable on the ledger, a fresh replay key): refused."""
    parts = split_jws(world.credential())
    twin_sig = _high_s(parts.signature)
    twin = forge(world, parts.header, parts.payload, twin_sig)
    denied_for(world, twin, Reason.BAD_SIGNATURE)
    with pytest.raises(BadSignatureError):
        check_presentation(twin, world.trust, world.now)


def test_malleated_issuer_signature_cannot_pass_twice_in_one_window(world: World) -> None:
    guard = InMemoryReplayGuard()
    parts = split_jws(world.credential())
    genuine = forge(world, parts.header, parts.payload, parts.signature)
    twin = forge(world, parts.header, parts.payload, _high_s(parts.signature))
    assert verify_presentation(genuine, world.trust, world.now, replay=guard).admitted
    v = verify_presentation(twin, world.trust, world.now + 1, replay=guard)
    assert v.decision is Decision.DENY and v.reasons == (Reason.BAD_SIGNATURE,)


def test_screenshot_one_tag_period_old_is_stale_not_another_phone(world: World) -> None:
    text = make_presentation(world.credential(), world.device, world.now)
    for windows_later in (256, 257, 512, 513):
        later = world.now + windows_later * WINDOW_SECONDS
        denied_for(world, text, Reason.PROOF_STALE, now=later)


def test_proof_by_another_device_is_still_reported_as_another_phone(world: World) -> None:
    from credential.keys import generate_private_key

    parts = split_jws(world.credential())
    other = forge(world, parts.header, parts.payload, parts.signature, generate_private_key())
    denied_for(world, other, Reason.HOLDER_PROOF_INVALID)
    denied_for(world, other, Reason.HOLDER_PROOF_INVALID, now=world.now + 256 * WINDOW_SECONDS)


def test_window_tag_period_is_one_byte() -> None:
    assert WINDOW_TAG_MODULUS == 256


@pytest.mark.parametrize(
    "header",
    [
        b'{"alg":"ES256","alg":"none","kid":"KID0","zip":"HBZ1"}',
        b'{"alg":"ES256","kid":"KID0","kid":"KID1","zip":"HBZ1"}',
        b'{"alg":"ES256","kid":"KID0","zip":"HBZ1","zip":"HBZ1"}',
    ],
)
def test_duplicate_jws_header_members_are_malformed(world: World, header: bytes) -> None:
    obj = json.loads(header)  # what a last-one-wins parser sees: a valid-looking header
    assert set(obj) == {"alg", "kid", "zip"}
    parts = split_jws(world.credential())
    text = forge(world, header, parts.payload, parts.signature)
    denied_for(world, text, Reason.MALFORMED)
    with pytest.raises(MalformedError):
        check_presentation(text, world.trust, world.now)


@pytest.mark.parametrize("value", [None, 42, 3.5, ["HB1:"], object()])
def test_check_presentation_of_a_non_string_is_malformed(world: World, value: object) -> None:
    with pytest.raises(MalformedError):
        check_presentation(value, world.trust, world.now)  # type: ignore[arg-type]
    v = verify_presentation(value, world.trust, world.now)  # type: ignore[arg-type]
    assert v.reasons == (Reason.MALFORMED,)


def test_digest_of_a_credential_is_unique(world: World) -> None:
    jws = world.credential()
    parts = split_jws(jws)
    p = parse_presentation(make_presentation(jws, world.device, world.now))
    twin = Presentation(p.header, p.payload, _high_s(parts.signature), p.window_tag, False, p.proof)
    assert credential_digest(jws) != twin.digest  # what malleability used to buy
    assert b64url(parts.signature) == jws.rsplit(".", 1)[1]
    _ = render_presentation(twin)  # still frames; verification is what refuses it
    assert DAY > 0


VECTORS = __import__("pathlib").Path(__file__).parent / "vectors" / "es256_low_s.json"


def _vector_cases() -> list[dict[str, object]]:
    return list(json.loads(VECTORS.read_text(encoding="utf-8"))["cases"])


@pytest.mark.parametrize("case", _vector_cases(), ids=lambda c: str(c["name"]))
def test_low_s_vectors(case: dict[str, object]) -> None:
    """tests/credential/vectors/es256_low_s.json: a genuine presentation and its
    high-s twins (issuer signature; holder proof), with the expected verdicts."""
    from credential.keys import SigningAlg
    from credential.trust import InMemoryTrustState, RegisteredKey

    doc = json.loads(VECTORS.read_text(encoding="utf-8"))
    trust = InMemoryTrustState()
    der = bytes.fromhex(doc["issuer_public_key_der_hex"])
    trust.add_key(RegisteredKey("GD", doc["kid"], SigningAlg.ES256, der, not_before=0))
    trust.sync_times["GD"] = doc["now"] - 60
    v = verify_presentation(str(case["qr"]), trust, doc["now"])
    assert v.decision.value == case["decision"]
    assert [r.value for r in v.reasons] == case["reasons"]


# Scalars where DER INTEGER encoding changes shape: zero, leading zero bytes, the top
# bit set (a 0x00 goes in front), and the ends of the range.
_EDGE_SCALARS = [0, 1, 0x7F, 0x80, 0xFF, 2**248 - 1, 2**255 - 1, 2**255, P256_HALF_ORDER]
_SCALARS = st.sampled_from([*_EDGE_SCALARS, P256_ORDER - 1, 2**256 - 1]) | st.integers(
    0, 2**256 - 1
)


@given(_SCALARS, _SCALARS)
def test_der_signature_is_the_encoding_cryptography_makes(r: int, s: int) -> None:
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert es256_der_signature(raw) == encode_dss_signature(r, s)


@given(st.sampled_from([P256_HALF_ORDER - 1, P256_HALF_ORDER, P256_HALF_ORDER + 1]) | _SCALARS)
def test_low_s_test_compares_s_with_half_the_group_order(s: int) -> None:
    raw = bytes(31) + b"\x01" + s.to_bytes(32, "big")
    assert is_low_s(raw) is (s <= P256_HALF_ORDER)
    assert not is_low_s(raw[:-1]) and not is_low_s(raw + b"\x00")


@pytest.mark.parametrize("r_top", [0x00, 0x01, 0x7F, 0x80, 0xFF])
@pytest.mark.parametrize("s_top", [0x00, 0x01, 0x7F, 0x80, 0xFF])
def test_der_framing_looked_up_by_top_bits_matches_cryptography(r_top: int, s_top: int) -> None:
    # Signatures whose r and s start with a non-zero byte take a looked-up framing; the
    # others are built byte by byte. Both must be the encoding cryptography makes.
    r = int.from_bytes(bytes([r_top]) + bytes(range(1, 32)), "big")
    s = int.from_bytes(bytes([s_top]) + bytes(range(31, 0, -1)), "big")
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert es256_der_signature(raw) == encode_dss_signature(r, s)
