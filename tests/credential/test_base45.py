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


def _reference_b45decode(text: str) -> bytes:
    """RFC 9285 §4 group by group, as the specification words it."""
    if any(c not in ALPHABET for c in text) or len(text) % 3 == 1:
        raise Base45Error(text)
    out = bytearray()
    for i in range(0, len(text), 3):
        group = [ALPHABET.index(c) for c in text[i : i + 3]]
        value = sum(d * 45**k for k, d in enumerate(group))
        if value > (0xFFFF if len(group) == 3 else 0xFF):
            raise Base45Error(text)
        out += value.to_bytes(len(group) - 1, "big")
    return bytes(out)


@given(st.text(alphabet=ALPHABET, max_size=60))
def test_decoder_agrees_with_the_group_by_group_reading(text: str) -> None:
    try:
        expected: bytes | None = _reference_b45decode(text)
    except Base45Error:
        expected = None
    if expected is None:
        with pytest.raises(Base45Error):
            b45decode(text)
    else:
        assert b45decode(text) == expected


def test_largest_groups_do_not_carry_into_their_neighbours() -> None:
    # "FGW" is 65535, ":::" is 91124 (the largest three characters can spell): both
    # next to small groups, at either end and in the middle of a long text.
    assert b45decode("FGW000FGW") == b"\xff\xff\x00\x00\xff\xff"
    assert b45decode("000" * 200 + "FGW") == bytes(400) + b"\xff\xff"
    for text in ("000:::000", ":::000", "000" * 200 + "GGW", "FGW" * 50 + ":::"):
        with pytest.raises(Base45Error, match="exceeds 65535"):
            b45decode(text)
