"""Compact revocation snapshots and deltas: round trips, digests, tampering, sizes."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.log.revocation import (
    RevocationDelta,
    RevocationError,
    RevocationSnapshot,
    apply_delta,
    find_extension,
    make_delta,
    open_snapshot,
    render_extension,
)

indices = st.frozensets(st.integers(min_value=0, max_value=2**32 - 1), max_size=200)
keys = st.lists(st.binary(min_size=1, max_size=64), max_size=5).map(tuple)


@given(indices, keys, st.integers(min_value=0, max_value=2**63))
def test_snapshot_round_trips(revoked: frozenset[int], k: tuple[bytes, ...], size: int) -> None:
    s = RevocationSnapshot("GD", size, revoked, k)
    data = s.to_bytes()
    assert RevocationSnapshot.from_bytes(data) == s
    assert RevocationSnapshot.from_bytes(data).to_bytes() == data
    assert open_snapshot(data, s.digest()) == s


@given(indices, indices, keys, keys)
def test_delta_moves_one_snapshot_to_the_next(
    a: frozenset[int], b: frozenset[int], ka: tuple[bytes, ...], kb: tuple[bytes, ...]
) -> None:
    old = RevocationSnapshot("MO", 10, a, ka)
    new = RevocationSnapshot("MO", 20, b, ka + kb)
    delta = make_delta(old, new)
    wire = RevocationDelta.from_bytes(delta.to_bytes())
    assert wire == delta
    assert apply_delta(old, wire) == new


def test_snapshot_from_an_untrusted_mirror_must_match_the_committed_digest() -> None:
    honest = RevocationSnapshot("GD", 5, frozenset({1, 2, 3}))
    forged = RevocationSnapshot("GD", 5, frozenset({1, 2}))  # hides revocation of 3
    with pytest.raises(RevocationError, match="digest mismatch"):
        open_snapshot(forged.to_bytes(), honest.digest())


def test_delta_that_hides_a_revocation_is_refused() -> None:
    old = RevocationSnapshot("GD", 5, frozenset({1}))
    new = RevocationSnapshot("GD", 9, frozenset({1, 7}))
    honest = make_delta(old, new)
    lying = RevocationDelta(
        "GD", 5, 9, honest.from_digest, honest.to_digest, frozenset(), honest.new_key_entries
    )
    with pytest.raises(RevocationError, match="result digest mismatch"):
        apply_delta(old, lying)


def test_delta_from_another_snapshot_is_refused() -> None:
    a = RevocationSnapshot("GD", 5, frozenset({1}))
    b = RevocationSnapshot("GD", 5, frozenset({2}))
    c = RevocationSnapshot("GD", 9, frozenset({2, 3}))
    with pytest.raises(RevocationError, match="does not start"):
        apply_delta(a, make_delta(b, c))


def test_rewritten_key_history_cannot_become_a_delta() -> None:
    a = RevocationSnapshot("GD", 5, frozenset(), (b"k1",))
    b = RevocationSnapshot("GD", 9, frozenset(), (b"k2",))
    with pytest.raises(RevocationError, match="appended"):
        make_delta(a, b)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"HBRS",
        b"XXXX\x01\x02GD",
        b"HBRS\x02\x02GD",
        b"HBRS\x01\x02gd" + bytes(8),
        b"HBRS\x01\x02GD" + bytes(8) + b"\x00\x00" + b"\x00\x00\x00\x05abc",
        b"HBRS\x01\x02GD" + bytes(8) + b"\x00\x00" + b"\x00\x00\x00\x04\xff\xff\xff\xff",
    ],
)
def test_malformed_snapshot_bytes_raise_typed_errors(data: bytes) -> None:
    with pytest.raises(RevocationError):
        RevocationSnapshot.from_bytes(data)


def test_trailing_bytes_are_refused() -> None:
    data = RevocationSnapshot("GD", 1, frozenset({4})).to_bytes()
    with pytest.raises(RevocationError, match="trailing"):
        RevocationSnapshot.from_bytes(data + b"\x00")


@given(st.binary(max_size=300))
def test_any_bytes_give_a_snapshot_or_a_typed_error(data: bytes) -> None:
    for parse in (RevocationSnapshot.from_bytes, RevocationDelta.from_bytes):
        with contextlib.suppress(RevocationError):
            parse(data)


def test_extension_line_round_trips_and_rejects_junk() -> None:
    d = bytes(range(32))
    assert find_extension(["other", render_extension(d)]) == d
    assert find_extension(["other"]) is None
    with pytest.raises(RevocationError):
        find_extension(["healthbridge/revocations !!!"])
    with pytest.raises(RevocationError):
        find_extension([render_extension(d), render_extension(d)])


def test_one_percent_of_a_dense_million_fits_in_a_small_bitmap() -> None:
    rng = random.Random(7)
    revoked = frozenset(rng.sample(range(1_000_000), 10_000))
    size = len(RevocationSnapshot("GD", 1_000_000, revoked).to_bytes())
    # About two bytes per revoked index, against 16 per index in a hash list.
    assert size < 10_000 * 2.5


def test_anchored_indices_round_trip_and_travel_in_deltas() -> None:
    from pyroaring import FrozenBitMap

    from ledger.log.revocation import RevocationDelta, RevocationSnapshot, apply_delta, make_delta

    old = RevocationSnapshot.build("GD", 10, [2], [], anchored=range(0, 8))
    assert RevocationSnapshot.from_bytes(old.to_bytes()) == old
    new = RevocationSnapshot.build("GD", 14, [2, 5], [], anchored=range(0, 12))
    delta = make_delta(old, new)
    assert delta.newly_anchored == FrozenBitMap(range(8, 12))
    assert RevocationDelta.from_bytes(delta.to_bytes()) == delta
    assert apply_delta(old, delta) == new


def test_a_delta_that_forgets_anchors_is_refused() -> None:
    from ledger.log.revocation import RevocationError, RevocationSnapshot, make_delta

    old = RevocationSnapshot.build("GD", 10, [], [], anchored=[1, 2, 3])
    new = RevocationSnapshot.build("GD", 11, [], [], anchored=[1, 3])
    with pytest.raises(RevocationError, match="anchor"):
        make_delta(old, new)


def test_index_set_to_bitmap32_matches_its_members() -> None:
    from ledger.log.rules import IndexSet

    members = [0, 1, 65_535, 65_536, 1_000_000, 2**32 - 1]
    assert list(IndexSet.of(members).to_bitmap32()) == members
    with pytest.raises(ValueError):
        IndexSet.of([2**32]).to_bitmap32()
