"""The ledger's validation rules: each attack or mistake is refused with its rule code."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from credential.keys import SigningAlg
from ledger.log.entries import (
    AuditDigest,
    CredentialAnchored,
    CredentialReinstated,
    CredentialRevoked,
    Entry,
    KeyAdded,
    KeyRevocationReason,
    KeyRevoked,
    RevocationReason,
    TimestampedEntry,
    encode_entry,
    root_public_key_bytes,
    sign_key_entry,
)
from ledger.log.errors import LedgerError
from ledger.log.rules import (
    KEY_START_LEEWAY_S,
    IndexSet,
    LogState,
    Rule,
    RuleViolationError,
    apply_entries,
    apply_entry,
)

GD_ROOT = Ed25519PrivateKey.from_private_bytes(b"G" * 32)
MO_ROOT = Ed25519PrivateKey.from_private_bytes(b"M" * 32)
DER = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200") + b"\x04" + bytes(64)
T0 = 1_767_139_200  # seconds


def leaf(entry: Entry, t: int = T0) -> TimestampedEntry:
    return TimestampedEntry(t * 1000, encode_entry(entry))


def key(kid: str = "k1", region: str = "GD", root: Ed25519PrivateKey = GD_ROOT, **kw: int) -> Entry:
    return sign_key_entry(
        KeyAdded(region, kid, SigningAlg.ES256, DER, kw.get("nb", T0), kw.get("na")), root
    )


def anchor(index: int, kid: str = "k1", region: str = "GD") -> Entry:
    return CredentialAnchored(region, index.to_bytes(32, "big"), index, kid, T0 + 86400)


def revoke(index: int, region: str = "GD") -> Entry:
    return CredentialRevoked(region, index, RevocationReason.STATUS_CHANGE, T0)


def reinstate(index: int) -> Entry:
    return CredentialReinstated("GD", index, T0)


def gd() -> LogState:
    return LogState.empty("GD", root_public_key_bytes(GD_ROOT))


def with_key() -> LogState:
    return apply_entry(gd(), leaf(key()))


def refused(state: LogState, lf: TimestampedEntry) -> Rule:
    with pytest.raises(RuleViolationError) as info:
        apply_entry(state, lf)
    return info.value.rule


def test_honest_history_is_accepted() -> None:
    state = apply_entries(
        gd(),
        [
            leaf(key()),
            leaf(anchor(1), T0 + 1),
            leaf(anchor(2), T0 + 2),
            leaf(revoke(1), T0 + 3),
            leaf(reinstate(1), T0 + 4),
            leaf(revoke(2), T0 + 5),
            leaf(AuditDigest("GD", b"\x01" * 32, 3), T0 + 6),
            leaf(AuditDigest("GD", b"\x02" * 32, 3), T0 + 6),
        ],
    )
    assert state.size == 8
    assert list(state.anchored) == [1, 2]
    assert not state.is_revoked(1) and state.is_revoked(2)
    assert state.last_timestamp_ms == (T0 + 6) * 1000
    registered = state.registered_key("k1")
    assert registered is not None and registered.alg is SigningAlg.ES256
    assert state.registered_key("nope") is None


def test_gd_log_refuses_an_mo_key_even_signed_by_the_mo_root() -> None:
    assert refused(gd(), leaf(key(region="MO", root=MO_ROOT))) is Rule.WRONG_REGION


def test_gd_log_refuses_to_revoke_an_mo_credential() -> None:
    state = apply_entry(with_key(), leaf(anchor(5)))
    assert refused(state, leaf(revoke(5, region="MO"))) is Rule.WRONG_REGION


def test_key_added_by_another_root_is_refused() -> None:
    assert refused(gd(), leaf(key(root=MO_ROOT))) is Rule.BAD_ROOT_SIGNATURE


def test_key_revoked_by_another_root_is_refused() -> None:
    forged = sign_key_entry(KeyRevoked("GD", "k1", None, T0, KeyRevocationReason.ROTATION), MO_ROOT)
    assert refused(with_key(), leaf(forged)) is Rule.BAD_ROOT_SIGNATURE


def test_a_kid_is_registered_once_and_revoked_once() -> None:
    assert refused(with_key(), leaf(key())) is Rule.DUPLICATE_KEY
    rev = sign_key_entry(KeyRevoked("GD", "k1", None, T0, KeyRevocationReason.ROTATION), GD_ROOT)
    state = apply_entry(with_key(), leaf(rev))
    assert refused(state, leaf(rev)) is Rule.KEY_ALREADY_REVOKED
    other = sign_key_entry(KeyRevoked("GD", "k9", None, T0, KeyRevocationReason.ROTATION), GD_ROOT)
    assert refused(with_key(), leaf(other)) is Rule.UNKNOWN_KEY


def test_a_retired_key_may_be_escalated_to_compromised_once() -> None:
    retire = sign_key_entry(
        KeyRevoked("GD", "k1", None, T0 + 100, KeyRevocationReason.ROTATION), GD_ROOT
    )
    state = apply_entry(with_key(), leaf(retire))
    compromise = sign_key_entry(
        KeyRevoked("GD", "k1", T0 + 50, T0 + 200, KeyRevocationReason.COMPROMISE), GD_ROOT
    )
    state = apply_entry(state, leaf(compromise))
    record = state.keys["k1"]
    assert record.compromised_at == T0 + 50 and record.retired_at == T0 + 100
    again = sign_key_entry(
        KeyRevoked("GD", "k1", T0 + 60, T0 + 300, KeyRevocationReason.COMPROMISE), GD_ROOT
    )
    assert refused(state, leaf(again)) is Rule.KEY_ALREADY_REVOKED
    assert refused(state, leaf(retire)) is Rule.KEY_ALREADY_REVOKED


def test_anchor_by_an_unregistered_key_is_refused() -> None:
    assert refused(with_key(), leaf(anchor(1, kid="k2"))) is Rule.UNKNOWN_KEY


def test_anchor_after_the_key_was_retired_or_compromised_is_refused() -> None:
    for reason, compromised in (
        (KeyRevocationReason.ROTATION, None),
        (KeyRevocationReason.COMPROMISE, T0 - 100),
    ):
        rev = sign_key_entry(KeyRevoked("GD", "k1", compromised, T0 + 10, reason), GD_ROOT)
        state = apply_entries(with_key(), [leaf(anchor(1), T0 + 5), leaf(rev, T0 + 10)])
        assert refused(state, leaf(anchor(2), T0 + 11)) is Rule.KEY_NOT_ACTIVE
        key_after = state.registered_key("k1")
        assert key_after is not None and key_after.compromised_at == compromised


def test_anchor_outside_the_key_validity_is_refused() -> None:
    state = apply_entry(gd(), leaf(key(nb=T0 + 10_000, na=T0 + 20_000)))
    assert refused(state, leaf(anchor(1), T0)) is Rule.KEY_NOT_ACTIVE
    assert refused(state, leaf(anchor(1), T0 + 20_000)) is Rule.KEY_NOT_ACTIVE
    apply_entry(state, leaf(anchor(1), T0 + 10_000 - KEY_START_LEEWAY_S))


def test_status_index_is_anchored_once() -> None:
    state = apply_entry(with_key(), leaf(anchor(7)))
    assert refused(state, leaf(anchor(7))) is Rule.DUPLICATE_STATUS_INDEX


def test_revoking_or_reinstating_an_unanchored_index_is_refused() -> None:
    assert refused(with_key(), leaf(revoke(3))) is Rule.NOT_ANCHORED
    assert refused(with_key(), leaf(reinstate(3))) is Rule.NOT_ANCHORED


def test_double_revocation_and_reinstating_a_valid_credential_are_refused() -> None:
    state = apply_entries(with_key(), [leaf(anchor(3)), leaf(revoke(3))])
    assert refused(state, leaf(revoke(3))) is Rule.ALREADY_REVOKED
    state = apply_entry(state, leaf(reinstate(3)))
    assert refused(state, leaf(reinstate(3))) is Rule.NOT_REVOKED


def test_timestamps_never_go_backwards() -> None:
    state = apply_entry(with_key(), leaf(anchor(1), T0 + 60))
    assert refused(state, leaf(anchor(2), T0 + 59)) is Rule.TIMESTAMP_REGRESSION
    apply_entry(state, leaf(anchor(2), T0 + 60))  # equal is fine


def test_audit_digest_count_never_shrinks() -> None:
    state = apply_entry(gd(), leaf(AuditDigest("GD", b"\x01" * 32, 10)))
    assert refused(state, leaf(AuditDigest("GD", b"\x02" * 32, 9))) is Rule.AUDIT_REGRESSION


def test_malformed_entry_bytes_are_refused_by_rule() -> None:
    assert refused(gd(), TimestampedEntry(T0 * 1000, b"\x01\x03junk")) is Rule.MALFORMED_ENTRY


def test_a_refused_entry_leaves_the_previous_state_untouched() -> None:
    state = apply_entry(with_key(), leaf(anchor(1)))
    before = (list(state.anchored), list(state.revoked), state.size)
    with pytest.raises(RuleViolationError):
        apply_entry(state, leaf(anchor(1)))
    assert (list(state.anchored), list(state.revoked), state.size) == before
    assert isinstance(RuleViolationError(Rule.NOT_ANCHORED, "x"), LedgerError)


def test_root_key_must_be_32_bytes() -> None:
    with pytest.raises(LedgerError):
        LogState.empty("GD", b"short")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 2**40 - 1)), max_size=60))
def test_index_set_behaves_like_a_set_and_versions_are_independent(
    ops: list[tuple[bool, int]],
) -> None:
    model: set[int] = set()
    current = IndexSet()
    versions = [(current, set(model))]
    for add, i in ops:
        current = current.add(i) if add else current.discard(i)
        if add:
            model.add(i)
        else:
            model.discard(i)
        versions.append((current, set(model)))
    for version, snapshot in versions:
        assert list(version) == sorted(snapshot)
        assert len(version) == len(snapshot)
    assert set(current.to_bitmap()) == model
    assert IndexSet.of(model).chunks.keys() == current.chunks.keys()


def test_index_set_shares_untouched_chunks() -> None:
    base = IndexSet.of(range(0, 300_000, 3))
    grown = base.add(299_999)
    changed = [h for h in grown.chunks if grown.chunks[h] is not base.chunks.get(h)]
    assert changed == [299_999 >> 16]
