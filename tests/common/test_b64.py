"""The one base64url pair (RFC 4648 §5, unpadded as in RFC 7515 §2): round trip and
every non-canonical spelling refused."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.b64 import b64url, b64url_bytes, b64url_decode


@given(st.binary(max_size=200))
def test_round_trip(data: bytes) -> None:
    text = b64url(data)
    assert "=" not in text
    assert b64url_decode(text) == data
    assert b64url_decode(text.encode("ascii")) == data


def test_rfc4648_vector() -> None:
    # RFC 4648 §10 "foobar", in the URL-safe alphabet without padding.
    assert b64url(b"foobar") == "Zm9vYmFy"
    assert b64url(b"\xfb\xff") == "-_8"


@pytest.mark.parametrize(
    "text",
    [
        "Zm9vYg==",  # padding
        "Zm9vYh",  # bits set past the last byte: a second spelling of b"foob"
        "Zm9v+mFy",  # standard alphabet
        "Zm9 vYmFy",  # space
        "Z",  # impossible length
        "Zm9vYmFyé",  # not ASCII
    ],
)
def test_non_canonical_spellings_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        b64url_decode(text)


def test_overlong_field_is_refused_before_decoding() -> None:
    with pytest.raises(ValueError, match="at most 8"):
        b64url_decode("A" * 12, max_chars=8)


@given(st.binary(max_size=200))
def test_bytes_encoder_is_rfc4648_urlsafe_without_padding(data: bytes) -> None:
    expected = base64.urlsafe_b64encode(data).rstrip(b"=")
    assert b64url_bytes(data) == expected
    assert b64url(data) == expected.decode("ascii")


def _reference_decode(text: str) -> bytes | None:
    """RFC 4648 §5 without padding, read the plain way: alphabet by pattern, canonical
    by re-encoding; None for anything refused."""
    if len(text) % 4 == 1 or not re.fullmatch(r"[A-Za-z0-9_-]*", text, flags=re.ASCII):
        return None
    out = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return out if base64.urlsafe_b64encode(out).rstrip(b"=").decode() == text else None


@given(st.text(alphabet="AQgw+/=_-Zz09 \n\x00é", max_size=12))
def test_decoder_refuses_exactly_what_the_plain_reading_refuses(text: str) -> None:
    expected = _reference_decode(text)
    if expected is None:
        with pytest.raises(ValueError):
            b64url_decode(text)
    else:
        assert b64url_decode(text) == expected


@pytest.mark.parametrize("value", [2**62, 2**40, 3, None, 1.5, ["QQ"]])
def test_a_number_or_other_object_is_refused_without_allocating(value: object) -> None:
    # bytes(n) of an integer allocates n zero bytes: a decoder handed a JSON number
    # must refuse it, not build it.
    with pytest.raises(ValueError, match="expected base64url text"):
        b64url_decode(value)  # type: ignore[arg-type]


def test_bytes_like_inputs_still_decode() -> None:
    assert b64url_decode(bytearray(b"QUI")) == b64url_decode(memoryview(b"QUI")) == b"AB"
