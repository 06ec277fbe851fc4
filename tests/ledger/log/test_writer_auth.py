"""Writer authentication: one signing input for client and node, parse/render round
trip, malformed headers refused with a typed error."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.log.writer_auth import (
    AUTH_SCHEME,
    WriterAuth,
    WriterAuthError,
    authorization,
    signing_input,
)

BODY = b'{"entries": []}'


def test_header_round_trip_and_verify() -> None:
    key = Ed25519PrivateKey.generate()
    header = authorization(key, "ledger.gd.example/log", BODY, 1_700_000_000)
    auth = WriterAuth.parse(header)
    assert auth.render() == header
    assert auth.timestamp == 1_700_000_000
    auth.verify("ledger.gd.example/log", BODY)


def test_signature_for_another_origin_or_body_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    auth = WriterAuth.parse(authorization(key, "ledger.gd.example/log", BODY, 1))
    with pytest.raises(WriterAuthError):
        auth.verify("ledger.mo.example/log", BODY)
    with pytest.raises(WriterAuthError):
        auth.verify("ledger.gd.example/log", BODY + b" ")


def test_non_ascii_origin_signs_and_verifies_the_same_bytes() -> None:
    # The client used to encode UTF-8 and the node ASCII: a non-ASCII origin made the
    # node fail instead of verifying. One function now builds the bytes for both sides.
    origin = "台账.gd.example/log"
    key = Ed25519PrivateKey.generate()
    auth = WriterAuth.parse(authorization(key, origin, BODY, 5))
    auth.verify(origin, BODY)
    assert signing_input(origin, 5, BODY).startswith(b"HB-Ledger-Submit\n" + origin.encode())


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer abc",
        f"{AUTH_SCHEME} a.b",
        f"{AUTH_SCHEME} AAAA.12x.AAAA",
        f"{AUTH_SCHEME} AAAA.{'9' * 13}.AAAA",
        f"{AUTH_SCHEME} AA==.1.AAAA",
        f"{AUTH_SCHEME} {'A' * 400}.1.AAAA",
        f"{AUTH_SCHEME} AAAA.١٢.AAAA",  # non-ASCII digits
    ],
)
def test_malformed_header_is_a_typed_error(header: str) -> None:
    with pytest.raises(WriterAuthError):
        WriterAuth.parse(header)
