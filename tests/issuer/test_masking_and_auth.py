"""Masking keeps personal data out of credentials; the HB-Device header resists
replay, tampering and foreign keys."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from credential.keys import es256_raw_signature, public_key_der
from issuer.device_auth import DeviceAuth, check_order, signed_message, verify_device_auth
from issuer.errors import UnauthorizedError
from issuer.masking import document_hint, mask_name
from issuer.testing import new_device

NOW = 1_800_000_000


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张小明", "张*明"),
        ("李华", "李*"),
        ("欧阳娜娜", "欧**娜"),
        ("Maria da Silva", "M*** da S***"),
        ("João Pedro dos Santos", "J*** P*** dos S***"),
    ],
)
def test_names_are_masked_for_the_credential(name: str, masked: str) -> None:
    assert mask_name(name) == masked


def test_document_hint_shows_only_the_tail() -> None:
    assert document_hint("G10000001") == "0001"
    assert document_hint("M123456") == "456"


def header(
    key: ec.EllipticCurvePrivateKey, ts: int, raw: bool = False, path: str = "/v1/credential"
) -> DeviceAuth:
    sig = key.sign(signed_message("GET", path, ts), ec.ECDSA(hashes.SHA256()))
    return DeviceAuth("holder-abcdefgh", ts, es256_raw_signature(sig) if raw else sig)


@pytest.mark.parametrize("raw", [False, True])
def test_device_header_round_trips_and_verifies(raw: bool) -> None:
    key = new_device()
    auth = DeviceAuth.parse(header(key, NOW, raw).render())
    verify_device_auth(auth, public_key_der(key), "GET", "/v1/credential", NOW, 300)


def test_stale_header_is_refused() -> None:
    key = new_device()
    with pytest.raises(UnauthorizedError, match="outside"):
        verify_device_auth(
            header(key, NOW - 301), public_key_der(key), "GET", "/v1/credential", NOW, 300
        )


def test_replayed_older_header_is_refused() -> None:
    key = new_device()
    with pytest.raises(UnauthorizedError, match="older"):
        verify_device_auth(
            header(key, NOW - 31),
            public_key_der(key),
            "GET",
            "/v1/credential",
            NOW,
            300,
            last_accepted_ts=NOW,
            reorder_s=30,
        )


def test_overtaken_header_within_the_reorder_window_is_accepted() -> None:
    # A wallet's request signed at NOW-5 arrives after its request signed at NOW.
    key = new_device()
    verify_device_auth(
        header(key, NOW - 5),
        public_key_der(key),
        "GET",
        "/v1/credential",
        NOW,
        300,
        last_accepted_ts=NOW,
        reorder_s=30,
    )


def test_reorder_window_edge_is_inclusive() -> None:
    check_order(NOW - 30, NOW, 30)
    with pytest.raises(UnauthorizedError, match="30s older"):
        check_order(NOW - 31, NOW, 30)


def test_header_signed_by_another_device_is_refused() -> None:
    with pytest.raises(UnauthorizedError, match="does not verify"):
        verify_device_auth(
            header(new_device(), NOW),
            public_key_der(new_device()),
            "GET",
            "/v1/credential",
            NOW,
            300,
        )


def test_header_for_another_path_is_refused() -> None:
    key = new_device()
    with pytest.raises(UnauthorizedError):
        verify_device_auth(
            header(key, NOW, path="/v1/other"),
            public_key_der(key),
            "GET",
            "/v1/credential",
            NOW,
            300,
        )


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "Bearer x",
        "HB-Device a.b",
        "HB-Device " + "a" * 600,
        "HB-Device holder-abcdefgh.12x.AAAA",
        "HB-Device ...",
    ],
)
def test_malformed_headers_are_refused(junk: str) -> None:
    with pytest.raises(UnauthorizedError):
        DeviceAuth.parse(junk)
