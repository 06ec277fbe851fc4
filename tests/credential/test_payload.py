"""The claims JSON reader: canonical claims take orjson's fast path, everything else
`json` with the duplicate check, and the fast path never reads bytes differently from
the strict reader (or accepts what it refuses)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from common.b64 import b64url, b64url_decode
from credential.claims import HealthClaims, SourceRef, StatusColour
from credential.errors import MalformedError
from credential.payload import (
    _canonical_object,
    _coordinate,
    _reject_duplicates,
    claims_from_json,
    claims_to_json,
    decode_payload,
    encode_payload,
)
from tests.credential.conftest import World

KID = "kid-0123456789ab"


def _strict(data: bytes) -> object:
    """What the strict reader makes of `data`: the object, or the exception type."""
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError, MalformedError) as e:
        return type(e)


def _typed(value: object) -> object:
    """`value` with every scalar tagged by its type: 1 and 1.0 and True compare equal
    in Python, but a claim read as a float where `json` reads an int is a difference."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def _assert_fast_path_agrees(data: bytes) -> None:
    fast = _canonical_object(data)
    if fast is not None:
        strict = _strict(data)
        assert isinstance(strict, dict), f"fast path accepted what json refuses: {data!r}"
        assert _typed(fast) == _typed(strict)


def test_issued_claims_take_the_fast_path(world: World) -> None:
    data = claims_to_json(world.claims())
    assert _canonical_object(data) == json.loads(data)


def test_duplicate_member_in_otherwise_canonical_claims_is_refused(world: World) -> None:
    # orjson keeps the last of two members of one name; the rewrite is then shorter
    # than the input and the strict reader sees, and refuses, the repetition.
    data = claims_to_json(world.claims())
    for member in (b'"nbf":', b'"sti":', b'"x":', b'"c":'):
        start = data.index(member)
        end = min(i for i in (data.find(b",", start), data.find(b"}", start)) if i > 0)
        twice = data[:start] + data[start:end] + b"," + data[start:end] + data[end:]
        assert _canonical_object(twice) is None
        with pytest.raises(MalformedError, match="duplicate JSON member"):
            claims_from_json(twice, KID)


@pytest.mark.parametrize(
    "rewrite",
    [
        lambda obj: json.dumps(obj, ensure_ascii=False, indent=1).encode(),  # whitespace
        lambda obj: json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode(),
        lambda obj: json.dumps(dict(reversed(list(obj.items())))).encode(),  # member order
    ],
    ids=["whitespace", "escaped-non-ascii", "unsorted"],
)
def test_non_canonical_claims_are_read_as_before(world: World, rewrite: Any) -> None:
    claims = world.claims()
    data = rewrite(json.loads(claims_to_json(claims)))
    assert _canonical_object(data) is None
    assert claims_from_json(data, world.gd_kid) == claims


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf{}",  # byte order mark
        b'{"nm":"\xff"}',  # not UTF-8
        b'{"a":1} x',  # trailing garbage
        b'{"a":NaN}',  # json reads NaN, orjson does not: the strict path decides
        b'{"a":123456789012345678901234567890}',  # orjson reads a float
        b'{"a":"\\ud800"}',  # lone surrogate escape
        b'{"a":-0}',
        b'{"a":1.0}',
        b"[]",
        b"",
    ],
)
def test_fast_path_defers_to_the_strict_reader_on_edge_cases(data: bytes) -> None:
    _assert_fast_path_agrees(data)
    with pytest.raises(MalformedError):
        claims_from_json(data, KID)


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=12,
)


@given(_JSON_VALUES, st.booleans())
def test_fast_path_reads_any_json_value_as_json_does(value: object, ascii_only: bool) -> None:
    canonical = json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":"), sort_keys=True)
    _assert_fast_path_agrees(canonical.encode("utf-8", "surrogatepass"))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
@given(st.data())
@example(data=None)
def test_mutated_claims_read_the_same_on_both_paths(world: World, data: Any) -> None:
    canonical = claims_to_json(world.claims())
    if data is None:
        mutated = canonical
    else:
        pos = data.draw(st.integers(0, len(canonical)))
        cut = data.draw(st.integers(0, 3))
        insert = data.draw(st.binary(max_size=3) | st.sampled_from([b'"', b",", b"}", b":1"]))
        mutated = canonical[:pos] + insert + canonical[pos + cut :]
    _assert_fast_path_agrees(mutated)


def test_payload_round_trip_of_a_converted_credential(world: World) -> None:
    claims = world.claims(source=SourceRef("MO", 7), colour=StatusColour.YELLOW)
    assert decode_payload(encode_payload(claims), world.gd_kid) == claims
    assert isinstance(claims, HealthClaims)


def _decoded(read: Any, text: Any) -> object:
    try:
        return read(text)
    except (ValueError, TypeError) as e:
        return type(e)


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@settings(max_examples=500)
@given(
    st.binary(min_size=31, max_size=33).map(b64url)
    | st.text(alphabet=_B64URL + "=+/. é\n", min_size=41, max_size=45)
)
def test_coordinate_reader_agrees_with_the_strict_decoder(text: str) -> None:
    # The device key coordinates are read by a shortcut for 43-character strings; it
    # must accept exactly what `b64url_decode` accepts, with the same bytes.
    assert _decoded(_coordinate, text) == _decoded(b64url_decode, text)


@pytest.mark.parametrize("last", sorted(set(_B64URL) - set(_B64URL[::4])))
def test_coordinate_with_bits_set_past_its_last_byte_is_refused(last: str) -> None:
    spelling = b64url(bytes(range(32)))[:-1] + last  # 43 characters, low bits set
    with pytest.raises(ValueError, match="canonical"):
        _coordinate(spelling)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("iss", 7),
        ("nm", None),
        ("dh", ["x"]),
        ("sti", "1"),
        ("iat", -1),
        ("nbf", 2**53),
        ("exp", 1.5),
        ("exp", True),
    ],
)
def test_claim_of_the_wrong_type_is_refused_by_name(world: World, name: str, value: object) -> None:
    obj = json.loads(claims_to_json(world.claims()))
    obj[name] = value
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    with pytest.raises(MalformedError, match=f"claim {name!r}"):
        claims_from_json(data, KID)


@pytest.mark.parametrize("value", [2**62, 2**70, 5, None, 1.5, ["x"], {"x": 1}])
def test_device_key_coordinate_that_is_not_a_string_is_malformed(
    world: World, value: object
) -> None:
    # A JSON number for `x` once reached bytes(n): 2**62 raised MemoryError out of
    # verification, and a few billion would have allocated as many zero bytes.
    obj = json.loads(claims_to_json(world.claims()))
    obj["cnf"]["jwk"]["x"] = value
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    with pytest.raises(MalformedError, match="invalid claims"):
        claims_from_json(data, KID)
