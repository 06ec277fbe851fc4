"""Log entries: one canonical encoding per value, root-signed key entries, leaves."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from credential.keys import SigningAlg
from ledger.log.entries import (
    KEY_ENTRY_TYPES,
    AuditDigest,
    CredentialAnchored,
    CredentialReinstated,
    CredentialRevoked,
    Entry,
    EntryType,
    KeyAdded,
    KeyRevocationReason,
    KeyRevoked,
    RevocationReason,
    TimestampedEntry,
    decode_entry,
    decode_leaf,
    decode_leaf_entry,
    encode_entry,
    encode_leaf,
    is_key_entry,
    root_public_key_bytes,
    sign_key_entry,
    verify_key_entry,
)
from ledger.log.errors import EntryError

ROOT = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
DER = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200") + b"\x04" + bytes(64)


def samples() -> list[Entry]:
    return [
        sign_key_entry(KeyAdded("GD", "k1", SigningAlg.ES256, DER, 1000, 2000), ROOT),
        sign_key_entry(KeyAdded("GD", "k2", SigningAlg.EDDSA, DER, 1000, None), ROOT),
        sign_key_entry(KeyRevoked("GD", "k1", None, 1500, KeyRevocationReason.ROTATION), ROOT),
        sign_key_entry(KeyRevoked("GD", "k1", 1200, 1500, KeyRevocationReason.COMPROMISE), ROOT),
        CredentialAnchored("MO", b"\x11" * 32, 42, "k1", 1900),
        CredentialRevoked("MO", 42, RevocationReason.STATUS_CHANGE, 1800),
        CredentialReinstated("MO", 42, 1850),
        AuditDigest("GD", b"\x22" * 32, 17),
    ]


@pytest.mark.parametrize("entry", samples(), ids=lambda e: e.type.value)
def test_entry_round_trips_canonically(entry: Entry) -> None:
    data = encode_entry(entry)
    assert decode_entry(data) == entry
    assert encode_entry(decode_entry(data)) == data
    assert data[0] == 1  # version


@pytest.mark.parametrize("entry", samples(), ids=lambda e: e.type.value)
def test_key_entry_check_on_bytes_agrees_with_the_decoded_type(entry: Entry) -> None:
    # The sequencer and the revocation publisher test the type byte without decoding.
    data = encode_entry(entry)
    assert is_key_entry(data) is (decode_entry(data).type in KEY_ENTRY_TYPES)
    assert not is_key_entry(data[:1])


def test_anchor_layout_is_small_and_fixed() -> None:
    data = encode_entry(CredentialAnchored("GD", b"\x11" * 32, 7, "abcdefghijklmnop", 99))
    assert data == (
        b"\x01\x03\x02GD"
        + b"\x11" * 32
        + struct.pack(">Q", 7)
        + b"\x10abcdefghijklmnop"
        + struct.pack(">Q", 99)
    )


def test_entries_carry_no_free_text_field() -> None:
    # Only identifiers, digests, times and enumerated reasons: no personal data slot.
    with pytest.raises(EntryError):
        CredentialRevoked("GD", 1, "holder Chan Tai Man moved", 5)  # type: ignore[arg-type]
    with pytest.raises(EntryError):
        CredentialAnchored("GD", b"\x00" * 32, 1, "name with spaces", 5)


@pytest.mark.parametrize("entry", samples(), ids=lambda e: e.type.value)
def test_every_truncation_and_extension_is_refused(entry: Entry) -> None:
    data = encode_entry(entry)
    for n in range(len(data)):
        with pytest.raises(EntryError):
            decode_entry(data[:n])
    with pytest.raises(EntryError):
        decode_entry(data + b"\x00")


@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_entry_error(data: bytes) -> None:
    try:
        entry = decode_entry(data)
    except EntryError:
        return
    assert encode_entry(entry) == data


@given(st.sampled_from(samples()), st.integers(min_value=0), st.integers(0, 255))
def test_single_byte_mutations_never_yield_a_second_encoding(
    entry: Entry, pos: int, value: int
) -> None:
    data = bytearray(encode_entry(entry))
    data[pos % len(data)] = value
    try:
        decoded = decode_entry(bytes(data))
    except EntryError:
        return
    assert encode_entry(decoded) == bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x02\x03",  # unknown version
        b"\x01\x09\x02GD",  # unknown type
        b"\x01\x05\x02gd" + bytes(16),  # lower-case region
        b"\x01\x05\x02G\xffD" + bytes(16),
    ],
)
def test_malformed_entries_are_refused(data: bytes) -> None:
    with pytest.raises(EntryError):
        decode_entry(data)


def test_non_canonical_optional_flag_is_refused() -> None:
    entry = samples()[1]  # KeyAdded without not_after: flag 0
    data = encode_entry(entry)
    flag_at = len(data) - 64 - 1
    assert data[flag_at] == 0
    bad = data[:flag_at] + b"\x02" + data[flag_at + 1 :]
    with pytest.raises(EntryError):
        decode_entry(bad)


def test_key_entries_are_signed_by_the_root_over_a_domain_separated_body() -> None:
    entry = samples()[0]
    assert isinstance(entry, KeyAdded)
    verify_key_entry(entry, root_public_key_bytes(ROOT))
    other = root_public_key_bytes(Ed25519PrivateKey.generate())
    with pytest.raises(EntryError):
        verify_key_entry(entry, other)
    # The same signature does not carry over to a different key entry.
    moved = KeyAdded("GD", "k9", entry.alg, entry.public_key_der, 1000, 2000, entry.root_signature)
    with pytest.raises(EntryError):
        verify_key_entry(moved, root_public_key_bytes(ROOT))
    # A raw signature over the bare body (no domain string) is refused.
    bare = ROOT.sign(encode_entry(entry)[:-64])
    undomained = KeyAdded("GD", "k1", SigningAlg.ES256, DER, 1000, 2000, bare)
    with pytest.raises(EntryError):
        verify_key_entry(undomained, root_public_key_bytes(ROOT))


def test_unsigned_key_entries_cannot_be_encoded() -> None:
    with pytest.raises(EntryError):
        encode_entry(KeyAdded("GD", "k1", SigningAlg.ES256, DER, 1000, None))


@pytest.mark.parametrize(
    "build",
    [
        lambda: KeyAdded("GD", "k1", "RS256", DER, 1, None),  # type: ignore[arg-type]
        lambda: KeyAdded("GD", "k1", SigningAlg.ES256, b"", 1, None),
        lambda: KeyAdded("GD", "k1", SigningAlg.ES256, DER, 10, 10),
        lambda: KeyRevoked("GD", "k1", None, 5, KeyRevocationReason.COMPROMISE),
        lambda: KeyRevoked("GD", "k1", 3, 5, KeyRevocationReason.ROTATION),
        lambda: CredentialAnchored("GD", b"short", 1, "k1", 5),
        lambda: CredentialAnchored("GD", b"\x00" * 32, -1, "k1", 5),
        lambda: CredentialAnchored("GD", b"\x00" * 32, 2**40, "k1", 5),
        lambda: CredentialAnchored("GUANGDONG", b"\x00" * 32, 1, "k1", 5),
        lambda: CredentialReinstated("GD", 1, -5),
        lambda: AuditDigest("GD", b"\x00" * 32, -1),
    ],
)
def test_invalid_entry_values_are_refused_when_built(build: object) -> None:
    with pytest.raises(EntryError):
        build()  # type: ignore[operator]


def test_leaf_round_trip_and_malformed_leaves() -> None:
    entry_bytes = encode_entry(samples()[4])
    leaf = TimestampedEntry(1_767_139_200_123, entry_bytes)
    data = encode_leaf(leaf)
    assert data[:9] == b"\x01" + struct.pack(">Q", 1_767_139_200_123)
    assert decode_leaf(data) == leaf
    assert leaf.entry.type is EntryType.CREDENTIAL_ANCHORED
    for bad in [b"", data[:9], b"\x02" + data[1:], data + b"\x00", data[:-1]]:
        with pytest.raises(EntryError):
            decode_leaf(bad)
    with pytest.raises(EntryError):
        TimestampedEntry(-1, entry_bytes)


def test_decode_leaf_entry_returns_leaf_and_entry_and_refuses_what_decode_leaf_refuses() -> None:
    entry = samples()[4]
    data = encode_leaf(TimestampedEntry(1_767_139_200_123, encode_entry(entry)))
    leaf, decoded = decode_leaf_entry(data)
    assert leaf == decode_leaf(data) and decoded == entry
    for bad in [b"", data[:9], b"\x02" + data[1:], data + b"\x00", data[:-1], b"x" * 70_000]:
        with pytest.raises(EntryError):
            decode_leaf_entry(bad)


def test_routing_fields_agree_with_the_full_decode() -> None:
    """A sharded node routes by fields read in place (ledger.node.sharding); they must
    be what the full decode says, and anything else must give None."""
    from ledger.log.entries import (
        CredentialAnchored,
        CredentialReinstated,
        CredentialRevoked,
        RevocationReason,
        encode_entry,
        routing_fields,
    )

    a = CredentialAnchored("MACAU", b"\x05" * 32, 2**40 - 1, "k" * 64, 2**63 - 1)
    assert routing_fields(encode_entry(a)) == (3, 2**40 - 1, 2**63 - 1)
    r = CredentialRevoked("GD", 77, RevocationReason.UNSPECIFIED, 5)
    assert routing_fields(encode_entry(r)) == (4, 77, None)
    assert routing_fields(encode_entry(CredentialReinstated("GD", 78, 5))) == (5, 78, None)
    for junk in (
        b"",
        b"\x01",
        b"\x01\x03\x02GD",
        encode_entry(a)[:-3],
        b"\x02" + encode_entry(a)[1:],
    ):
        assert routing_fields(junk) is None
