"""The ledger's validation rules: a pure state machine over timestamped leaves.

`apply_entry(state, leaf)` returns the log state after one more leaf, or raises
`RuleViolationError` whose `rule` names the rule broken. The sequencer runs it before
it sequences an entry; every witness and validating mirror runs it again on every
entry before cosigning (docs/ledger-protocol.md, "Witnessing and mirroring"), so a
node cannot slip in an entry its peers would refuse. The rules:

- every entry names the log's own region (a GD log never carries MO keys or revokes
  MO credentials): WRONG_REGION;
- only the region's root key adds or revokes the region's keys: BAD_ROOT_SIGNATURE;
  a kid is added once (DUPLICATE_KEY) and revoked once (KEY_ALREADY_REVOKED), except
  that a retired key may later be revoked for compromise (an escalation);
- an anchor names a registered key (UNKNOWN_KEY) that is active at the leaf time
  (KEY_NOT_ACTIVE) and a status index never anchored before
  (DUPLICATE_STATUS_INDEX);
- a revocation names an anchored (NOT_ANCHORED), un-revoked (ALREADY_REVOKED) index;
  a reinstatement names a revoked one (NOT_REVOKED);
- audit digests never count fewer records than before (AUDIT_REGRESSION);
- leaf timestamps never go backwards (TIMESTAMP_REGRESSION);
- undecodable entries are refused (MALFORMED_ENTRY).

The state is compact: status indices live in chunked roaring bitmaps with structural
sharing (`IndexSet`), so applying one entry copies at most one 64 Ki-index chunk,
and 10 million anchors take about a megabyte. Credential digests are not kept.
No I/O and no clock: time comes only from the leaf.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from pyroaring import BitMap, BitMap64, FrozenBitMap

from credential.keys import SigningAlg
from credential.trust import RegisteredKey
from ledger.log.entries import (
    ROOT_PUBLIC_KEY_SIZE,
    AuditDigest,
    CredentialAnchored,
    CredentialReinstated,
    CredentialRevoked,
    Entry,
    KeyAdded,
    KeyRevocationReason,
    KeyRevoked,
    TimestampedEntry,
    decode_entry,
    verify_key_entry,
)
from ledger.log.errors import EntryError, LedgerError

CHUNK_BITS = 16  # status indices per bitmap chunk: 2^16 (roaring's own container size)
_CHUNK_MASK = (1 << CHUNK_BITS) - 1
KEY_START_LEEWAY_S = 300  # seconds; issuer and sequencer clocks may differ this much
MS_PER_S = 1000


class Rule(StrEnum):
    MALFORMED_ENTRY = "malformed_entry"
    WRONG_REGION = "wrong_region"
    BAD_ROOT_SIGNATURE = "bad_root_signature"
    DUPLICATE_KEY = "duplicate_key"
    UNKNOWN_KEY = "unknown_key"
    KEY_ALREADY_REVOKED = "key_already_revoked"
    KEY_NOT_ACTIVE = "key_not_active"
    DUPLICATE_STATUS_INDEX = "duplicate_status_index"
    NOT_ANCHORED = "not_anchored"
    ALREADY_REVOKED = "already_revoked"
    NOT_REVOKED = "not_revoked"
    AUDIT_REGRESSION = "audit_regression"
    TIMESTAMP_REGRESSION = "timestamp_regression"


class RuleViolationError(LedgerError):
    """An entry the ledger's rules refuse; `rule` names which rule."""

    def __init__(self, rule: Rule, message: str) -> None:
        super().__init__(f"{rule.value}: {message}")
        self.rule = rule


@dataclass(frozen=True)
class IndexSet:
    """An immutable set of status indices: roaring bitmap chunks shared between
    versions, so `add`/`discard` copy one chunk, never the whole set."""

    chunks: Mapping[int, FrozenBitMap] = field(default_factory=dict)
    count: int = 0

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int):
            return False
        chunk = self.chunks.get(index >> CHUNK_BITS)
        return chunk is not None and (index & _CHUNK_MASK) in chunk

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[int]:
        for high in sorted(self.chunks):
            base = high << CHUNK_BITS
            for low in self.chunks[high]:
                yield base | low

    def add(self, index: int) -> IndexSet:
        if index in self:
            return self
        high, low = index >> CHUNK_BITS, index & _CHUNK_MASK
        old = self.chunks.get(high)
        new = FrozenBitMap([low]) if old is None else old | FrozenBitMap([low])
        return IndexSet({**self.chunks, high: new}, self.count + 1)

    def discard(self, index: int) -> IndexSet:
        if index not in self:
            return self
        high, low = index >> CHUNK_BITS, index & _CHUNK_MASK
        rest = self.chunks[high] - FrozenBitMap([low])
        chunks = dict(self.chunks)
        if rest:
            chunks[high] = rest
        else:
            del chunks[high]
        return IndexSet(chunks, self.count - 1)

    @classmethod
    def of(cls, indices: Iterable[int]) -> IndexSet:
        grouped: dict[int, list[int]] = {}
        for i in indices:
            grouped.setdefault(i >> CHUNK_BITS, []).append(i & _CHUNK_MASK)
        chunks = {h: FrozenBitMap(lows) for h, lows in grouped.items()}
        return cls(chunks, sum(len(c) for c in chunks.values()))

    def to_bitmap32(self) -> FrozenBitMap:
        """The indices as one 32-bit roaring bitmap, built chunk by chunk (no per-index
        loop: a region's ten million anchors take milliseconds). Indices must fit 32
        bits (ledger.log.revocation.MAX_STATUS_INDEX)."""
        out = BitMap()
        for high, chunk in self.chunks.items():
            if high >> (32 - CHUNK_BITS):
                raise ValueError(f"status index chunk {high} is beyond 32 bits")
            out |= chunk.shift(high << CHUNK_BITS)
        return FrozenBitMap(out)

    def to_bitmap(self) -> BitMap64:
        """One 64-bit roaring bitmap of every index (for snapshots and sync)."""
        return BitMap64(iter(self))


@dataclass(frozen=True)
class KeyRecord:
    """A registered issuer key as the log's entries define it."""

    kid: str
    alg: SigningAlg
    public_key_der: bytes
    not_before: int  # POSIX seconds
    not_after: int | None = None
    retired_at: int | None = None
    compromised_at: int | None = None
    revocation_reason: KeyRevocationReason | None = None

    def active_at(self, t: int) -> bool:
        """May this key anchor a credential at POSIX second `t`?"""
        if t + KEY_START_LEEWAY_S < self.not_before:
            return False
        for end in (self.not_after, self.retired_at, self.compromised_at):
            if end is not None and t >= end:
                return False
        return True


@dataclass(frozen=True)
class LogState:
    """Everything the rules need to judge the next leaf of one region's log."""

    region: str
    root_public_key: bytes  # 32-byte Ed25519 key of the region's root
    keys: Mapping[str, KeyRecord] = field(default_factory=dict)
    anchored: IndexSet = field(default_factory=IndexSet)
    revoked: IndexSet = field(default_factory=IndexSet)
    last_timestamp_ms: int = 0
    audit_count: int = 0
    size: int = 0  # leaves applied

    @classmethod
    def empty(cls, region: str, root_public_key: bytes) -> LogState:
        if len(root_public_key) != ROOT_PUBLIC_KEY_SIZE:
            raise LedgerError(
                f"expected a {ROOT_PUBLIC_KEY_SIZE}-byte Ed25519 root key, "
                f"found {len(root_public_key)} bytes"
            )
        return cls(region, bytes(root_public_key))

    def is_revoked(self, status_index: int) -> bool:
        return status_index in self.revoked

    def registered_key(self, kid: str) -> RegisteredKey | None:
        """The key as `credential.trust` describes it (for trust states built on this)."""
        k = self.keys.get(kid)
        if k is None:
            return None
        return RegisteredKey(
            region=self.region,
            kid=k.kid,
            alg=k.alg,
            public_key_der=k.public_key_der,
            not_before=k.not_before,
            not_after=k.not_after,
            compromised_at=k.compromised_at,
            retired_at=k.retired_at if k.compromised_at is None else None,
        )


def _check_root_signature(state: LogState, entry: KeyAdded | KeyRevoked) -> None:
    try:
        verify_key_entry(entry, state.root_public_key)
    except EntryError as e:
        raise RuleViolationError(
            Rule.BAD_ROOT_SIGNATURE, f"{entry.type.value} {entry.kid} not signed by the root key"
        ) from e


def _key_added(state: LogState, e: KeyAdded) -> LogState:
    _check_root_signature(state, e)
    if e.kid in state.keys:
        raise RuleViolationError(Rule.DUPLICATE_KEY, f"expected a new kid, found {e.kid} again")
    record = KeyRecord(e.kid, e.alg, e.public_key_der, e.not_before, e.not_after)
    return replace(state, keys={**state.keys, e.kid: record})


def _key_revoked(state: LogState, e: KeyRevoked) -> LogState:
    _check_root_signature(state, e)
    old = state.keys.get(e.kid)
    if old is None:
        raise RuleViolationError(Rule.UNKNOWN_KEY, f"expected a registered kid, found {e.kid}")
    escalation = (
        old.retired_at is not None and old.compromised_at is None and e.compromised_at is not None
    )
    if old.retired_at is not None and not escalation:
        raise RuleViolationError(
            Rule.KEY_ALREADY_REVOKED, f"expected an unrevoked key, {e.kid} was revoked already"
        )
    # Retired -> compromised is the one legal second revocation: a retired key's private
    # file can still leak, and what it signed must then be void from the compromise time.
    # The key stays retired from the earlier of the two retirement times.
    retired_at = e.retired_at if old.retired_at is None else min(old.retired_at, e.retired_at)
    record = replace(
        old, retired_at=retired_at, compromised_at=e.compromised_at, revocation_reason=e.reason
    )
    return replace(state, keys={**state.keys, e.kid: record})


def _anchored(state: LogState, e: CredentialAnchored, t: int) -> LogState:
    key = state.keys.get(e.kid)
    if key is None:
        raise RuleViolationError(Rule.UNKNOWN_KEY, f"expected a registered kid, found {e.kid}")
    if not key.active_at(t):
        raise RuleViolationError(
            Rule.KEY_NOT_ACTIVE, f"expected key {e.kid} active at {t}, found it inactive"
        )
    if e.status_index in state.anchored:
        raise RuleViolationError(
            Rule.DUPLICATE_STATUS_INDEX, f"expected a fresh status index, {e.status_index} is used"
        )
    return replace(state, anchored=state.anchored.add(e.status_index))


def _revoked(state: LogState, e: CredentialRevoked) -> LogState:
    if e.status_index not in state.anchored:
        raise RuleViolationError(
            Rule.NOT_ANCHORED, f"expected an anchored index, found {e.status_index}"
        )
    if e.status_index in state.revoked:
        raise RuleViolationError(
            Rule.ALREADY_REVOKED, f"expected an unrevoked index, {e.status_index} is revoked"
        )
    return replace(state, revoked=state.revoked.add(e.status_index))


def _reinstated(state: LogState, e: CredentialReinstated) -> LogState:
    if e.status_index not in state.anchored:
        raise RuleViolationError(
            Rule.NOT_ANCHORED, f"expected an anchored index, found {e.status_index}"
        )
    if e.status_index not in state.revoked:
        raise RuleViolationError(
            Rule.NOT_REVOKED, f"expected a revoked index, {e.status_index} is not revoked"
        )
    return replace(state, revoked=state.revoked.discard(e.status_index))


def _audit(state: LogState, e: AuditDigest) -> LogState:
    if e.count < state.audit_count:
        raise RuleViolationError(
            Rule.AUDIT_REGRESSION,
            f"expected at least {state.audit_count} audit records, found {e.count}",
        )
    return replace(state, audit_count=e.count)


def apply_entry(state: LogState, leaf: TimestampedEntry) -> LogState:
    """The state after `leaf`, or `RuleViolationError` naming the broken rule."""
    # 1. Time never goes backwards.
    if leaf.timestamp_ms < state.last_timestamp_ms:
        raise RuleViolationError(
            Rule.TIMESTAMP_REGRESSION,
            f"expected a timestamp >= {state.last_timestamp_ms} ms, found {leaf.timestamp_ms}",
        )
    # 2. The entry decodes canonically.
    try:
        entry: Entry = decode_entry(leaf.entry_bytes)
    except EntryError as e:
        raise RuleViolationError(Rule.MALFORMED_ENTRY, str(e)) from e
    # 3. It belongs to this log's region.
    if entry.region != state.region:
        raise RuleViolationError(
            Rule.WRONG_REGION,
            f"expected region {state.region}, found {entry.region} in {entry.type.value}",
        )
    # 4. The type's own rules.
    t = leaf.timestamp_ms // MS_PER_S
    if isinstance(entry, KeyAdded):
        state = _key_added(state, entry)
    elif isinstance(entry, KeyRevoked):
        state = _key_revoked(state, entry)
    elif isinstance(entry, CredentialAnchored):
        state = _anchored(state, entry, t)
    elif isinstance(entry, CredentialRevoked):
        state = _revoked(state, entry)
    elif isinstance(entry, CredentialReinstated):
        state = _reinstated(state, entry)
    else:
        state = _audit(state, entry)
    return replace(state, last_timestamp_ms=leaf.timestamp_ms, size=state.size + 1)


def apply_entries(state: LogState, leaves: Iterable[TimestampedEntry]) -> LogState:
    """Apply leaves in order; the first violation raises (nothing partial escapes)."""
    for leaf in leaves:
        state = apply_entry(state, leaf)
    return state
