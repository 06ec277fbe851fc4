"""The verification checklist against genuine codes and every attack docs/threat-model.md lists.

Each attack must come back with its own reason and never ADMIT. Forged presentations
carry a valid holder proof for the forged credential, so each attack reaches the
checklist step it targets.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.b64 import b64url
from credential.base45 import b45encode
from credential.claims import StatusColour
from credential.errors import ProofReplayedError, RevokedError
from credential.issue import credential_digest, sign_credential, split_jws
from credential.keys import (
    PrivateKey,
    SigningAlg,
    es256_der_signature,
    es256_raw_signature,
    generate_private_key,
    key_id,
    public_key_der,
)
from credential.payload import claims_to_json, deflate, encode_payload
from credential.presentation import (
    QR_PREFIX,
    WINDOW_SECONDS,
    Presentation,
    make_presentation,
    parse_presentation,
    proof_signing_input,
    render_presentation,
    window_of,
)
from credential.trust import RegisteredKey
from credential.verdict import Decision, Reason, StationPolicy, describe
from credential.verify import (
    CLOCK_SKEW_LEEWAY_S,
    InMemoryReplayGuard,
    check_presentation,
    verify_presentation,
)
from tests.credential.conftest import DAY, World

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def forge(
    world: World,
    header: bytes,
    payload: bytes,
    signature: bytes,
    device: PrivateKey | None = None,
    now: float | None = None,
) -> str:
    """Frame an arbitrary JWS with a valid holder proof (verbatim header form)."""
    now = world.now if now is None else now
    jws = f"{b64url(header)}.{b64url(payload)}.{b64url(signature)}"
    window = window_of(now)
    dev = device or world.device
    assert isinstance(dev, ec.EllipticCurvePrivateKey)
    der = dev.sign(
        proof_signing_input(credential_digest(jws), window, None), ec.ECDSA(hashes.SHA256())
    )
    return render_presentation(
        Presentation(header, payload, signature, window % 256, False, es256_raw_signature(der))
    )


def verdict_of(
    world: World, text: str | bytes, **kw: object
) -> tuple[Decision, tuple[Reason, ...]]:
    kw.setdefault("now", world.now)
    v = verify_presentation(text, world.trust, **kw)  # type: ignore[arg-type]
    return v.decision, v.reasons


def denied_for(world: World, text: str | bytes, reason: Reason, **kw: object) -> None:
    decision, reasons = verdict_of(world, text, **kw)
    assert decision is Decision.DENY
    assert reasons == (reason,)


# --- genuine codes ---------------------------------------------------------------------


def test_genuine_green_code_is_admitted_with_display_fields(world: World) -> None:
    jws = world.credential()
    text = make_presentation(jws, world.device, world.now)
    v = verify_presentation(text, world.trust, world.now)
    assert v.decision is Decision.ADMIT and v.reasons == ()
    assert v.display is not None and v.display.masked_name == "张*明"
    assert v.region == "GD" and v.colour is StatusColour.GREEN
    assert v.sync_age_s == 60
    assert v.digest_prefix == credential_digest(jws)[:8].hex()


def test_eddsa_credential_from_the_other_region_is_admitted(world: World) -> None:
    jws = world.credential(world.mo_key, region="MO", kid=world.mo_kid)
    assert verdict_of(world, make_presentation(jws, world.device, world.now)) == (
        Decision.ADMIT,
        (),
    )


def test_proof_from_the_previous_window_is_still_fresh(world: World) -> None:
    text = make_presentation(world.credential(), world.device, world.now)
    assert verdict_of(world, text, now=world.now + WINDOW_SECONDS)[0] is Decision.ADMIT


def test_check_presentation_returns_the_verified_credential(world: World) -> None:
    jws = world.credential()
    vp = check_presentation(make_presentation(jws, world.device, world.now), world.trust, world.now)
    assert vp.credential_jws == jws and vp.claims == world.claims()
    assert vp.digest == credential_digest(jws)


def test_check_presentation_raises_typed_errors(world: World) -> None:
    world.trust.revoked.add(("GD", 424_242))
    text = make_presentation(world.credential(), world.device, world.now)
    with pytest.raises(RevokedError):
        check_presentation(text, world.trust, world.now)


# --- forged and tampered credentials ----------------------------------------------------


def test_tampered_payload_fails_the_signature(world: World) -> None:
    parts = split_jws(world.credential())
    tampered = encode_payload(world.claims(colour=StatusColour.GREEN, status_index=1))
    denied_for(world, forge(world, parts.header, tampered, parts.signature), Reason.BAD_SIGNATURE)


def test_red_code_edited_to_green_is_rejected(world: World) -> None:
    parts = split_jws(world.credential(colour=StatusColour.RED))
    green = encode_payload(world.claims(colour=StatusColour.GREEN))
    denied_for(world, forge(world, parts.header, green, parts.signature), Reason.BAD_SIGNATURE)


def test_signature_by_an_unregistered_key_is_unknown_key(world: World) -> None:
    rogue = generate_private_key()
    jws = world.credential(rogue, kid=key_id(public_key_der(rogue)))
    denied_for(world, make_presentation(jws, world.device, world.now), Reason.UNKNOWN_KEY)


def test_key_newer_than_the_station_view_asks_for_a_sync(world: World) -> None:
    rogue = generate_private_key()
    jws = world.credential(rogue, kid=key_id(public_key_der(rogue)), issued_at=world.now - 10)
    text = make_presentation(jws, world.device, world.now)
    denied_for(world, text, Reason.STATION_NEEDS_SYNC)


def test_forged_signature_under_a_registered_kid_is_bad_signature(world: World) -> None:
    rogue = generate_private_key()
    header = json.dumps({"alg": "ES256", "kid": world.gd_kid, "zip": "HBZ2"}).encode()
    payload = encode_payload(world.claims())
    signing_input = f"{b64url(header)}.{b64url(payload)}".encode()
    sig = es256_raw_signature(rogue.sign(signing_input, ec.ECDSA(hashes.SHA256())))  # type: ignore[call-arg,union-attr]
    denied_for(world, forge(world, header, payload, sig), Reason.BAD_SIGNATURE)


def test_alg_none_is_refused(world: World) -> None:
    header = b'{"alg":"none","kid":"%s","zip":"HBZ2"}' % world.gd_kid.encode()
    denied_for(
        world, forge(world, header, encode_payload(world.claims()), b""), Reason.ALG_MISMATCH
    )


def test_hs256_signed_with_the_public_key_as_secret_is_refused(world: World) -> None:
    header = json.dumps({"alg": "HS256", "kid": world.gd_kid, "zip": "HBZ2"}).encode()
    payload = encode_payload(world.claims())
    signing_input = f"{b64url(header)}.{b64url(payload)}".encode()
    for secret in (
        public_key_der(world.gd_key),
        world.gd_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    ):
        mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
        denied_for(world, forge(world, header, payload, mac), Reason.ALG_MISMATCH)


def test_alg_header_other_than_the_registered_one_is_refused(world: World) -> None:
    # An EdDSA signature presented under the ES256-registered GD kid.
    header = json.dumps({"alg": "EdDSA", "kid": world.gd_kid, "zip": "HBZ2"}).encode()
    payload = encode_payload(world.claims())
    signing_input = f"{b64url(header)}.{b64url(payload)}".encode()
    sig = world.mo_key.sign(signing_input)  # type: ignore[call-arg]
    denied_for(world, forge(world, header, payload, sig), Reason.ALG_MISMATCH)


def test_kid_naming_another_regions_key_does_not_verify(world: World) -> None:
    # A GD-signed credential claiming to be from MO: looked up as (MO, gd kid).
    jws = sign_credential(world.claims(region="MO"), world.gd_key, SigningAlg.ES256)
    denied_for(world, make_presentation(jws, world.device, world.now), Reason.UNKNOWN_KEY)


def test_trust_state_returning_a_foreign_key_is_refused(world: World) -> None:
    gd = world.trust.key("GD", world.gd_kid)
    assert gd is not None
    world.trust.keys[("MO", world.gd_kid)] = gd  # a confused store hands back GD's key
    jws = sign_credential(world.claims(region="MO"), world.gd_key, SigningAlg.ES256)
    text = make_presentation(jws, world.device, world.now)
    denied_for(world, text, Reason.KEY_REGION_MISMATCH)


def test_credential_from_outside_the_consortium_is_unknown_region(world: World) -> None:
    jws = sign_credential(world.claims(region="HK"), world.gd_key, SigningAlg.ES256)
    denied_for(world, make_presentation(jws, world.device, world.now), Reason.UNKNOWN_REGION)


def test_unknown_header_members_are_malformed(world: World) -> None:
    parts = split_jws(world.credential())
    header = json.dumps({"alg": "ES256", "kid": world.gd_kid, "zip": "HBZ2", "crit": ["x"]})
    text = forge(world, header.encode(), parts.payload, parts.signature)
    denied_for(world, text, Reason.MALFORMED)


# --- validity window ---------------------------------------------------------------------


def test_expired_code_is_refused(world: World) -> None:
    jws = world.credential(expires_at=world.now - CLOCK_SKEW_LEEWAY_S)
    denied_for(world, make_presentation(jws, world.device, world.now), Reason.EXPIRED)


def test_code_within_the_clock_skew_leeway_is_admitted(world: World) -> None:
    jws = world.credential(expires_at=world.now - CLOCK_SKEW_LEEWAY_S + 1)
    assert verdict_of(world, make_presentation(jws, world.device, world.now))[0] is Decision.ADMIT


def test_not_yet_valid_code_is_refused(world: World) -> None:
    jws = world.credential(not_before=world.now + CLOCK_SKEW_LEEWAY_S + 1)
    denied_for(world, make_presentation(jws, world.device, world.now), Reason.NOT_YET_VALID)


# --- holder proof --------------------------------------------------------------------------


def test_proof_by_another_device_key_is_refused(world: World) -> None:
    parts = split_jws(world.credential())
    text = forge(world, parts.header, parts.payload, parts.signature, device=generate_private_key())
    denied_for(world, text, Reason.HOLDER_PROOF_INVALID)


def test_replayed_screenshot_two_minutes_later_is_stale(world: World) -> None:
    text = make_presentation(world.credential(), world.device, world.now)
    denied_for(world, text, Reason.PROOF_STALE, now=world.now + 120)


def test_proof_from_the_future_is_stale(world: World) -> None:
    text = make_presentation(world.credential(), world.device, world.now + 3 * WINDOW_SECONDS)
    denied_for(world, text, Reason.PROOF_STALE)


def test_same_proof_replayed_is_refused(world: World) -> None:
    guard = InMemoryReplayGuard()
    text = make_presentation(world.credential(), world.device, world.now)
    assert verdict_of(world, text, replay=guard)[0] is Decision.ADMIT
    denied_for(world, text, Reason.PROOF_REPLAYED, replay=guard, now=world.now + 5)


def test_malleated_proof_signature_is_refused_as_high_s(world: World) -> None:
    guard = InMemoryReplayGuard()
    text = make_presentation(world.credential(), world.device, world.now)
    p = parse_presentation(text)
    s = int.from_bytes(p.proof[32:], "big")
    flipped = p.proof[:32] + (P256_ORDER - s).to_bytes(32, "big")
    twin = render_presentation(
        Presentation(p.header, p.payload, p.signature, p.window_tag, False, flipped)
    )
    assert verdict_of(world, text, replay=guard)[0] is Decision.ADMIT
    denied_for(world, twin, Reason.HOLDER_PROOF_INVALID, replay=guard)
    denied_for(world, twin, Reason.HOLDER_PROOF_INVALID)


def test_replay_key_is_the_sha256_of_the_proven_bytes(world: World) -> None:
    # The proof's hash is both what its ES256 signature is verified over and the replay
    # key: it must stay SHA-256(context || digest || window [|| H(challenge)]), so the
    # entries a running station remembers keep matching.
    seen: list[bytes] = []

    class Recording:
        def check_and_record(self, proof_id: bytes, expires_at: float, now: float) -> None:
            seen.append(proof_id)

    jws = world.credential()
    for challenge in (None, b"nonce-7"):
        text = make_presentation(jws, world.device, world.now, challenge=challenge)
        guard = Recording()
        v = verify_presentation(text, world.trust, world.now, replay=guard, challenge=challenge)
        assert v.decision is Decision.ADMIT
        signed = proof_signing_input(credential_digest(jws), window_of(world.now), challenge)
        assert seen[-1] == hashlib.sha256(signed).digest()


def test_one_hash_pass_gives_the_credential_digest_for_both_header_forms(world: World) -> None:
    # The ES256 message hash and the credential digest come from one SHA-256 pass over
    # the JWS; the digest must be the JWS's own, canonical or verbatim header alike.
    jws = world.credential()
    parts = split_jws(jws)
    verbatim = forge(world, parts.header + b" ", parts.payload, parts.signature)
    for text in (make_presentation(jws, world.device, world.now), verbatim):
        p = parse_presentation(text)
        v = verify_presentation(text, world.trust, world.now)  # the verbatim one is denied
        assert v.digest_prefix == credential_digest(p.credential_jws)[:8].hex()
    text = make_presentation(jws, world.device, world.now)
    genuine = check_presentation(text, world.trust, world.now)
    assert genuine.digest == credential_digest(jws) and genuine.credential_jws == jws


def test_replay_guard_forgets_proofs_once_they_expire() -> None:
    guard = InMemoryReplayGuard(max_entries=10)
    guard.check_and_record(b"a", expires_at=100, now=0)
    with pytest.raises(ProofReplayedError):
        guard.check_and_record(b"a", expires_at=100, now=50)
    guard.check_and_record(b"a", expires_at=200, now=101)
    assert len(guard) == 1


def test_challenge_bound_proof_is_admitted_only_for_that_challenge(world: World) -> None:
    jws = world.credential()
    text = make_presentation(jws, world.device, world.now, challenge=b"nonce-1")
    assert verdict_of(world, text, challenge=b"nonce-1")[0] is Decision.ADMIT
    denied_for(world, text, Reason.HOLDER_PROOF_INVALID, challenge=b"nonce-2")
    denied_for(world, text, Reason.CHALLENGE_MISMATCH)
    unbound = make_presentation(jws, world.device, world.now)
    denied_for(world, unbound, Reason.CHALLENGE_MISMATCH, challenge=b"nonce-1")


# --- keys: compromise and retirement --------------------------------------------------------


def _mark_gd_key(world: World, **changes: int) -> None:
    gd = world.trust.key("GD", world.gd_kid)
    assert gd is not None
    world.trust.add_key(RegisteredKey(**{**gd.__dict__, **changes}))


def test_registered_key_of_another_type_than_its_algorithm_is_a_bad_signature(
    world: World,
) -> None:
    # An Ed25519 key registered for ES256: refused on every scan (a failed key is never
    # cached as usable).
    gd = world.trust.key("GD", world.gd_kid)
    assert gd is not None
    swapped = dataclasses.replace(gd, public_key_der=public_key_der(world.mo_key))
    world.trust.add_key(swapped)
    text = make_presentation(world.credential(), world.device, world.now)
    for _ in range(2):
        denied_for(world, text, Reason.BAD_SIGNATURE)


def test_key_replaced_under_the_same_kid_is_checked_with_the_new_key(world: World) -> None:
    # The issuer's key checks are cached by the registered key's bytes, not by its kid.
    text = make_presentation(world.credential(), world.device, world.now)
    assert verdict_of(world, text) == (Decision.ADMIT, ())
    gd = world.trust.key("GD", world.gd_kid)
    assert gd is not None
    other = public_key_der(generate_private_key(SigningAlg.ES256))
    world.trust.add_key(dataclasses.replace(gd, public_key_der=other))
    denied_for(world, text, Reason.BAD_SIGNATURE)
    world.trust.add_key(gd)
    assert verdict_of(world, text) == (Decision.ADMIT, ())


def test_compromised_key_admits_only_what_was_anchored_before_the_compromise(
    world: World,
) -> None:
    compromised_at = world.now - 3600
    _mark_gd_key(world, compromised_at=compromised_at)
    before = world.credential(status_index=1)
    after = world.credential(status_index=2)
    unanchored = world.credential(status_index=3)
    world.trust.anchors[("GD", credential_digest(before))] = compromised_at - 600
    world.trust.anchors[("GD", credential_digest(after))] = compromised_at + 600
    assert verdict_of(world, make_presentation(before, world.device, world.now)) == (
        Decision.ADMIT,
        (),
    )
    denied_for(world, make_presentation(after, world.device, world.now), Reason.KEY_COMPROMISED)
    text = make_presentation(unanchored, world.device, world.now)
    denied_for(world, text, Reason.KEY_COMPROMISED)


def test_code_signed_after_key_retirement_is_refused(world: World) -> None:
    _mark_gd_key(world, retired_at=world.now - 3600)
    old = world.credential(issued_at=world.now - 7200, not_before=world.now - 7200)
    new = world.credential(issued_at=world.now - 60)
    assert verdict_of(world, make_presentation(old, world.device, world.now))[0] is Decision.ADMIT
    denied_for(world, make_presentation(new, world.device, world.now), Reason.KEY_RETIRED)


def test_code_signed_before_the_key_was_valid_is_refused(world: World) -> None:
    _mark_gd_key(world, not_before=world.now - 60)
    denied_for(
        world, make_presentation(world.credential(), world.device, world.now), Reason.KEY_NOT_ACTIVE
    )


# --- revocation, sync age, policy ----------------------------------------------------------


def test_revoked_code_is_denied(world: World) -> None:
    world.trust.revoked.add(("GD", 424_242))
    text = make_presentation(world.credential(), world.device, world.now)
    denied_for(world, text, Reason.REVOKED)


def test_stale_sync_makes_revocation_unknown_and_fails_closed(world: World) -> None:
    policy = StationPolicy(max_sync_age_s=3600)
    world.trust.sync_times["GD"] = world.now - 3601
    text = make_presentation(world.credential(), world.device, world.now)
    denied_for(world, text, Reason.REVOCATION_UNKNOWN, policy=policy)


def test_lenient_policy_sends_unknown_revocation_to_manual_check(world: World) -> None:
    policy = StationPolicy(max_sync_age_s=3600, on_revocation_unknown=Decision.MANUAL_CHECK)
    world.trust.sync_times["GD"] = world.now - 7200
    text = make_presentation(world.credential(), world.device, world.now)
    assert verdict_of(world, text, policy=policy) == (
        Decision.MANUAL_CHECK,
        (Reason.REVOCATION_UNKNOWN,),
    )


def test_yellow_goes_to_manual_check_and_red_is_denied(world: World) -> None:
    yellow = make_presentation(
        world.credential(colour=StatusColour.YELLOW), world.device, world.now
    )
    red = make_presentation(world.credential(colour=StatusColour.RED), world.device, world.now)
    assert verdict_of(world, yellow) == (Decision.MANUAL_CHECK, (Reason.STATUS_YELLOW,))
    assert verdict_of(world, red) == (Decision.DENY, (Reason.STATUS_RED,))


def test_every_reason_has_words_for_staff() -> None:
    assert all(describe(r) for r in Reason)


# --- malformed input -------------------------------------------------------------------------


def test_truncated_oversized_and_non_utf8_inputs_are_refused(world: World) -> None:
    text = make_presentation(world.credential(), world.device, world.now)
    denied_for(world, text[: len(text) // 2 // 3 * 3 + len(QR_PREFIX) % 3], Reason.MALFORMED)
    denied_for(world, text + "00" * 3000, Reason.TOO_LARGE)
    denied_for(world, b"HB2:\xc3\x28\xff", Reason.MALFORMED)


def test_decompression_bomb_is_too_large(world: World) -> None:
    parts = split_jws(world.credential())
    bomb = deflate(b"[" * 1_000_000)
    denied_for(world, forge(world, parts.header, bomb, parts.signature), Reason.TOO_LARGE)


def test_wrong_prefix_and_wrong_version_are_refused(world: World) -> None:
    text = make_presentation(world.credential(), world.device, world.now)
    denied_for(world, "hb2:" + text[4:], Reason.MALFORMED)
    denied_for(world, "HC1:" + text[4:], Reason.FOREIGN_EU_DCC)
    denied_for(world, "HB1:" + text[4:], Reason.UNSUPPORTED_VERSION)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=700), st.text(max_size=700)))
def test_arbitrary_qr_content_never_raises_and_never_admits(data: bytes | str) -> None:
    v = verify_presentation(data, _FUZZ_WORLD.trust, _FUZZ_WORLD.now)
    assert v.decision is Decision.DENY


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_single_character_change_never_admits(data: st.DataObject) -> None:
    text = _FUZZ_TEXT
    i = data.draw(st.integers(len(QR_PREFIX), len(text) - 1))
    c = data.draw(st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"))
    if c == text[i]:
        return
    mutated = text[:i] + c + text[i + 1 :]
    v = verify_presentation(mutated, _FUZZ_WORLD.trust, _FUZZ_WORLD.now)
    assert v.decision is Decision.DENY


def _fuzz_setup() -> tuple[World, str]:
    from tests.credential.conftest import make_world

    w = make_world()
    return w, make_presentation(w.credential(), w.device, w.now)


_FUZZ_WORLD, _FUZZ_TEXT = _fuzz_setup()


def test_random_frames_behind_a_valid_prefix_never_admit(world: World) -> None:
    for n in range(0, 400, 7):
        data = hashlib.sha256(str(n).encode()).digest() * (n // 32 + 1)
        assert verdict_of(world, QR_PREFIX + b45encode(data[:n]))[0] is Decision.DENY
    _ = es256_der_signature  # raw/DER conversion is exercised by every proof above
    _ = DAY


def test_device_key_off_the_curve_is_refused_as_invalid_holder_proof() -> None:
    # The cnf point is checked to lie on P-256 when the device key is loaded (an
    # off-curve point is the invalid-curve attack's way in).
    from credential.errors import KeyFormatError
    from credential.keys import P256_SPKI_PREFIX
    from credential.verify import _device_key

    off_curve = P256_SPKI_PREFIX + b"\x04" + (1).to_bytes(32, "big") + (1).to_bytes(32, "big")
    with pytest.raises(KeyFormatError):
        _device_key(off_curve)
    with pytest.raises(KeyFormatError):
        _device_key(b"\x30\x10" + b"\x00" * 16)


def test_device_key_coordinate_given_as_a_huge_number_is_malformed(world: World) -> None:
    # A signed-looking code whose cnf key has a JSON number for `x`: once bytes(2**62)
    # and a MemoryError out of verify_presentation (a number of a few billion would
    # have allocated that many bytes on every scan).
    claims = json.loads(claims_to_json(world.claims()))
    claims["cnf"]["jwk"]["x"] = 2**62
    payload = deflate(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    parts = split_jws(world.credential())
    denied_for(world, forge(world, parts.header, payload, parts.signature), Reason.MALFORMED)


def test_device_keys_load_as_p256_and_other_curves_are_refused() -> None:
    # The loaded key's class is compared with the one learned from P-256's generator;
    # the curve itself is fixed by the SPKI prefix. Both must keep holding.
    from credential.errors import KeyFormatError
    from credential.verify import _P256_PUBLIC_KEY_CLASS, _device_key

    device = generate_private_key()
    key = _device_key(public_key_der(device))
    assert type(key) is _P256_PUBLIC_KEY_CLASS and key.curve.name == "secp256r1"
    assert issubclass(_P256_PUBLIC_KEY_CLASS, ec.EllipticCurvePublicKey)
    for curve in (ec.SECP384R1(), ec.SECP256K1()):
        other = ec.generate_private_key(curve).public_key()
        der = other.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with pytest.raises(KeyFormatError):
            _device_key(der)


@pytest.mark.parametrize(
    ("colour", "lenient", "expected"),
    [
        (StatusColour.GREEN, Decision.MANUAL_CHECK, Decision.MANUAL_CHECK),
        (StatusColour.YELLOW, Decision.ADMIT, Decision.MANUAL_CHECK),
        (StatusColour.RED, Decision.MANUAL_CHECK, Decision.DENY),
    ],
)
def test_colour_reason_comes_first_and_a_stale_view_never_softens_the_decision(
    world: World, colour: StatusColour, lenient: Decision, expected: Decision
) -> None:
    # The verdict's reasons are the colour's (if any), then the stale view's and the
    # missing anchor's; a lenient policy for a stale view raises a decision, never lowers it.
    world.trust.sync_times["GD"] = world.now - 7200
    world.trust.full_anchor_regions.add("GD")  # the view knows every anchor: none here
    policy = StationPolicy(max_sync_age_s=3600, on_revocation_unknown=lenient)
    # Issued after the view's checkpoint: its anchor may not be in the view yet.
    fresh = world.credential(colour=colour, issued_at=world.now - 60, not_before=world.now - 60)
    text = make_presentation(fresh, world.device, world.now)
    colour_reason = {
        StatusColour.GREEN: (),
        StatusColour.YELLOW: (Reason.STATUS_YELLOW,),
        StatusColour.RED: (Reason.STATUS_RED,),
    }[colour]
    v = verify_presentation(text, world.trust, world.now, policy=policy)
    assert v.reasons == (*colour_reason, Reason.REVOCATION_UNKNOWN, Reason.NOT_YET_ANCHORED)
    assert v.decision is expected and v.display is not None and v.colour is colour
