"""Presentation framing: QR text round trips, size on the QR, malformed QR content."""

from __future__ import annotations

import dataclasses

import pytest
import segno
from hypothesis import given, settings
from hypothesis import strategies as st

from credential.base45 import b45decode, b45encode
from credential.errors import (
    EuDccCodeError,
    MalformedError,
    PresentationFormatError,
    SmartHealthCardCodeError,
    TooLargeError,
    UnsupportedVersionError,
)
from credential.issue import canonical_header, credential_digest, split_jws
from credential.keys import SigningAlg, generate_private_key
from credential.presentation import (
    MAX_QR_BYTES,
    QR_PREFIX,
    WINDOW_SECONDS,
    Presentation,
    make_presentation,
    parse_presentation,
    render_presentation,
    resolve_window,
    window_of,
)
from tests.credential.conftest import World

QR_VERSION_TARGET = 15  # docs/credential-format.md §5: a presentation fits version 15 at ECC M

presentations = st.builds(
    Presentation,
    header=st.one_of(
        st.builds(
            canonical_header,
            st.sampled_from(SigningAlg),
            st.from_regex(r"[A-Za-z0-9_-]{4,64}", fullmatch=True),
        ),
        st.binary(max_size=300),
    ),
    payload=st.binary(min_size=1, max_size=400),
    signature=st.binary(max_size=255),
    window_tag=st.integers(0, 255),
    challenge_bound=st.booleans(),
    proof=st.binary(min_size=64, max_size=64),
)


@settings(max_examples=150, deadline=None)
@given(presentations)
def test_any_presentation_round_trips_through_qr_text(p: Presentation) -> None:
    text = render_presentation(p)
    assert text.startswith(QR_PREFIX)
    assert parse_presentation(text) == p
    assert parse_presentation(text.encode("ascii")) == p
    assert render_presentation(parse_presentation(text)) == text


def test_wallet_presentation_carries_the_exact_credential(world: World) -> None:
    jws = world.credential()
    p = parse_presentation(make_presentation(jws, world.device, world.now))
    assert p.credential_jws == jws
    assert p.digest == credential_digest(jws)
    assert p.window_tag == window_of(world.now) % 256


@pytest.mark.parametrize("alg", list(SigningAlg))
def test_full_presentation_fits_qr_version_15_at_ecc_m(world: World, alg: SigningAlg) -> None:
    # Realistic worst case: 4-character Chinese masked name, 9-character document hint,
    # 30-day validity, a status index in the hundreds of millions, a challenge.
    key = world.gd_key if alg is SigningAlg.ES256 else world.mo_key
    region, kid = ("GD", world.gd_kid) if alg is SigningAlg.ES256 else ("MO", world.mo_kid)
    jws = world.credential(
        key,
        region=region,
        kid=kid,
        masked_name="欧阳*明",
        document_hint="C1234****",
        status_index=987_654_321,
        expires_at=world.now + 30 * 86_400,
    )
    text = make_presentation(jws, world.device, world.now, challenge=b"station-nonce")
    qr = segno.make(text, error="m", boost_error=False)
    assert qr.mode == "alphanumeric"
    assert qr.error == "M"
    assert qr.version <= QR_VERSION_TARGET  # type: ignore[operator]


def test_window_tag_resolves_to_the_nearest_window() -> None:
    now = 1_760_000_000.0
    w = window_of(now)
    assert w == int(now // WINDOW_SECONDS)
    for delta in (-128, -5, -1, 0, 1, 5, 127):
        assert resolve_window((w + delta) % 256, now) == w + delta


def test_wallet_refuses_a_device_key_the_credential_does_not_name(world: World) -> None:
    with pytest.raises(PresentationFormatError):
        make_presentation(world.credential(), generate_private_key(), world.now)
    with pytest.raises(PresentationFormatError):
        make_presentation(world.credential(), generate_private_key(SigningAlg.EDDSA), world.now)


def _frame(world: World) -> bytes:
    text = make_presentation(world.credential(), world.device, world.now)
    return b45decode(text[len(QR_PREFIX) :])


def test_truncated_frames_are_malformed(world: World) -> None:
    frame = _frame(world)
    for cut in (0, 1, 2, 10, 18, 82, 84, 147, 148):
        with pytest.raises(MalformedError):
            parse_presentation(QR_PREFIX + b45encode(frame[:cut]))


def _verbatim_frame(world: World) -> bytes:
    parts = split_jws(world.credential())
    p = Presentation(
        header=b'{"alg":"ES256","kid":"x","zip":"HBZ2"}',
        payload=parts.payload,
        signature=parts.signature,
        window_tag=9,
        challenge_bound=True,
        proof=bytes(64),
    )
    return b45decode(render_presentation(p)[len(QR_PREFIX) :])


@pytest.mark.parametrize("form", ["canonical", "verbatim"])
def test_every_cut_of_a_frame_is_malformed_and_the_whole_frame_parses(
    world: World, form: str
) -> None:
    # The frame is read by offsets checked against its length: every prefix of a
    # valid frame that ends before the payload, down to the empty one, must come back
    # MalformedError, never an IndexError or a presentation with a short field. (The
    # payload runs to the frame's end: a cut inside it is refused when it inflates.)
    frame = _frame(world) if form == "canonical" else _verbatim_frame(world)
    whole = parse_presentation(QR_PREFIX + b45encode(frame))
    payload_at = len(frame) - len(whole.payload)
    for cut in range(payload_at + 1):
        with pytest.raises(MalformedError):
            parse_presentation(QR_PREFIX + b45encode(frame[:cut]))
    for cut in range(payload_at + 1, len(frame) + 1):
        p = parse_presentation(QR_PREFIX + b45encode(frame[:cut]))
        assert (p.header, p.signature, p.proof) == (whole.header, whole.signature, whole.proof)
        assert p.payload == frame[payload_at:cut] and len(p.proof) == 64


def test_verbatim_frame_with_a_signature_longer_than_the_frame_is_malformed(
    world: World,
) -> None:
    frame = bytearray(_verbatim_frame(world))
    sig_len_at = 3 + int.from_bytes(frame[1:3], "big")
    frame[sig_len_at] = 255
    with pytest.raises(MalformedError, match="signature"):
        parse_presentation(QR_PREFIX + b45encode(bytes(frame[: sig_len_at + 200])))


def test_presentation_stays_frozen_and_compares_as_a_dataclass(world: World) -> None:
    # Presentation writes its own __init__ (one store for every field, on every scan).
    text = make_presentation(world.credential(), world.device, world.now)
    p, twin = parse_presentation(text), parse_presentation(text)
    assert p == twin and hash(p) == hash(twin)
    assert (
        p.canonical is not None
        and Presentation(p.header, p.payload, p.signature, p.window_tag, p.challenge_bound, p.proof)
        == p
    )  # `canonical` is not compared, and defaults to None
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.window_tag = 0  # type: ignore[misc]
    with pytest.raises(ValueError, match="init=False"):
        dataclasses.replace(p, signing_input=b"")


def test_truncated_text_is_malformed(world: World) -> None:
    text = make_presentation(world.credential(), world.device, world.now)
    body = text[len(QR_PREFIX) :]
    with pytest.raises(MalformedError):  # a dangling base45 character
        parse_presentation(QR_PREFIX + body[: (len(body) - 2) // 3 * 3 + 1])


def test_oversized_input_is_refused_before_decoding() -> None:
    with pytest.raises(TooLargeError):
        parse_presentation(QR_PREFIX + "0" * MAX_QR_BYTES)
    with pytest.raises(TooLargeError):
        parse_presentation(b"\xff" * (MAX_QR_BYTES + 1))


@pytest.mark.parametrize(
    "data",
    [b"HB2:\xff\xfe", "HB2:abc".encode("utf-16"), b"\x00\x01\x02", "HB2:Ä€".encode()],
)
def test_non_ascii_bytes_are_malformed(data: bytes) -> None:
    with pytest.raises(MalformedError):
        parse_presentation(data)


@pytest.mark.parametrize("text", ["HC2:NCFOXN%TS3DH", "shc:5676290952", "", "HB", "hb1:00"])
def test_wrong_prefix_is_malformed(text: str) -> None:
    with pytest.raises(MalformedError):
        parse_presentation(text)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("HC1:NCFOXN%TS3DH", EuDccCodeError),
        ("shc:/5676290952", SmartHealthCardCodeError),
        ("SHC:/1/3/5676290952", SmartHealthCardCodeError),
        (b"HC1:6BFOXN", EuDccCodeError),
    ],
)
def test_foreign_health_codes_are_named_not_called_unreadable(
    text: str | bytes, error: type[Exception]
) -> None:
    with pytest.raises(error):
        parse_presentation(text)


@pytest.mark.parametrize("text", ["HB1:0000", "HB3:0000", "HB0:", "HB17:ABC"])
def test_other_format_versions_are_reported_as_unsupported(text: str) -> None:
    with pytest.raises(UnsupportedVersionError):
        parse_presentation(text)


def test_unknown_header_form_and_flag_bits_are_malformed(world: World) -> None:
    frame = bytearray(_frame(world))
    bad_form = bytes([0x07]) + frame[1:]
    with pytest.raises(MalformedError):
        parse_presentation(QR_PREFIX + b45encode(bad_form))
    flags_at = 2 + frame[1] + 64
    frame[flags_at] = 0x80
    with pytest.raises(MalformedError):
        parse_presentation(QR_PREFIX + b45encode(bytes(frame)))


def test_verbatim_header_is_kept_byte_for_byte(world: World) -> None:
    jws = world.credential()
    parts = split_jws(jws)
    p = Presentation(
        header=b'{"alg":"none","kid":"x","zip":"DEF"}',
        payload=parts.payload,
        signature=b"",
        window_tag=3,
        challenge_bound=False,
        proof=bytes(64),
    )
    assert parse_presentation(render_presentation(p)) == p


def test_presentation_rebuilt_with_other_parts_carries_their_jws(world: World) -> None:
    # The signing input and the JWS bytes are derived when a presentation is built:
    # a copy with another payload or signature must not keep the original's.
    p = parse_presentation(make_presentation(world.credential(), world.device, world.now))
    other = parse_presentation(
        make_presentation(world.credential(status_index=7), world.device, world.now)
    )
    twin = dataclasses.replace(p, payload=other.payload, signature=other.signature)
    assert twin.credential_jws == other.credential_jws
    assert twin.signing_input == other.signing_input
    assert twin.digest == credential_digest(other.credential_jws)


def test_kid_outside_the_kid_form_is_malformed_on_every_scan(world: World) -> None:
    # Canonical headers are cached per (form, kid); a refused kid is never cached, so a
    # second scan of the same bad code is refused the same way.
    frame = bytearray(_frame(world))
    kid_len = frame[1]
    frame[2 : 2 + kid_len] = b"!" * kid_len
    for _ in range(2):
        with pytest.raises(MalformedError, match="kid"):
            parse_presentation(QR_PREFIX + b45encode(bytes(frame)))
    frame[2] = 0xE9  # not ASCII
    with pytest.raises(MalformedError, match="ASCII"):
        parse_presentation(QR_PREFIX + b45encode(bytes(frame)))
