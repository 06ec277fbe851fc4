"""Base45 (RFC 9285): the RFC's own examples, round trips and malformed text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credential.base45 import ALPHABET, Base45Error, b45decode, b45encode

# RFC 9285 §4.3 and §4.4 examples.
RFC_EXAMPLES = [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581")]


@pytest.mark.parametrize(("raw", "text"), RFC_EXAMPLES)
def test_rfc9285_examples_encode_and_decode(raw: bytes, text: str) -> None:
    assert b45encode(raw) == text
    assert b45decode(text) == raw


def test_rfc9285_decoding_example() -> None:
    assert b45decode("QED8WEX0") == b"ietf!"


@given(st.binary(max_size=600))
def test_any_bytes_round_trip(data: bytes) -> None:
    text = b45encode(data)
    assert set(text) <= set(ALPHABET)
    assert b45decode(text) == data


@pytest.mark.parametrize(
    "bad",
    [
        "A",  # dangling single character
        "ABCD",  # 4 = 3 + 1 dangling
        "GGW",  # 65535 < value (RFC 9285 §4.4 "GGW" is 65536+)
        ":::",  # 44 + 44*45 + 44*2025 > 65535
        "::",  # tail above 255
        "abc",  # lowercase is not in the alphabet
        "AB\u00e9",
    ],
)
def test_malformed_base45_is_refused(bad: str) -> None:
    with pytest.raises(Base45Error):
        b45decode(bad)
