"""What verification needs to know about the ledger: the trust-state interface.

The ledger's sync client implements `TrustState` over its synced copy of every
region's log; `InMemoryTrustState` serves tests and tools. Lookups are pure reads: no
network, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from credential.keys import SigningAlg


@dataclass(frozen=True)
class RegisteredKey:
    """An issuer signing key as the region registered it on its log.

    `alg` is pinned here, by registration: verification never takes it from a token.
    `compromised_at` is set when the key was revoked for compromise: credentials it
    signed that were anchored before that instant stay valid, all others are refused.
    `retired_at` is set when the key was revoked without compromise (no new credentials
    after that instant; earlier ones stay valid until they expire).
    """

    region: str
    kid: str
    alg: SigningAlg
    public_key_der: bytes  # DER SubjectPublicKeyInfo
    not_before: int
    not_after: int | None = None
    compromised_at: int | None = None
    retired_at: int | None = None


@runtime_checkable
class TrustState(Protocol):
    """A verifier's view of the consortium's logs, as of its last sync."""

    def regions(self) -> frozenset[str]:
        """Regions this view knows (members of the consortium)."""
        ...

    def key(self, region: str, kid: str) -> RegisteredKey | None:
        """The registered key, or None when the region never registered it (as far as
        this view knows)."""
        ...

    def is_revoked(self, region: str, status_index: int) -> bool:
        """Whether the credential with that status index is revoked as of the view."""
        ...

    def anchored_at(self, region: str, digest: bytes) -> int | None:
        """When the credential with that SHA-256 digest was anchored on its region's log
        (the checkpoint time of the tree that first included it), or None if the view
        does not know. Consulted only for credentials signed by a compromised key."""
        ...

    def synced_at(self, region: str) -> int | None:
        """Unix time of the newest cosigned checkpoint this view reflects, or None when
        the region was never synced. Verification compares it with the reference time to
        decide whether revocation status is still fresh enough to trust."""
        ...

    def anchors_known(self, region: str) -> bool:
        """Whether this view holds every anchor of the region's log up to its synced
        checkpoint (a full-mode view): then a digest `anchored_at` does not know is not
        on the region's quorum-cosigned log as of the view. False for a compact view."""
        ...

    def index_anchored(self, region: str, status_index: int) -> bool | None:
        """A compact view's check: whether the region's log anchored a credential under
        this status index as of the view (the committed snapshot's anchored set), or
        None when the view cannot tell. Weaker than the digest: it binds the index."""
        ...


@dataclass
class InMemoryTrustState:
    """A TrustState held in dictionaries: for tests, tools and the demo's fixtures."""

    keys: dict[tuple[str, str], RegisteredKey] = field(default_factory=dict)
    revoked: set[tuple[str, int]] = field(default_factory=set)
    anchors: dict[tuple[str, bytes], int] = field(default_factory=dict)
    sync_times: dict[str, int] = field(default_factory=dict)
    # Regions whose every anchor is listed in `anchors` (a full-mode view). Empty by
    # default: fixtures that list no anchors do not claim to know them all.
    full_anchor_regions: set[str] = field(default_factory=set)
    # Regions whose anchored status indices are known (a compact view), and those indices.
    anchored_indices: dict[str, set[int]] = field(default_factory=dict)

    def regions(self) -> frozenset[str]:
        return frozenset(self.sync_times) | frozenset(r for r, _ in self.keys)

    def key(self, region: str, kid: str) -> RegisteredKey | None:
        return self.keys.get((region, kid))

    def is_revoked(self, region: str, status_index: int) -> bool:
        return (region, status_index) in self.revoked

    def anchored_at(self, region: str, digest: bytes) -> int | None:
        return self.anchors.get((region, digest))

    def synced_at(self, region: str) -> int | None:
        return self.sync_times.get(region)

    def anchors_known(self, region: str) -> bool:
        return region in self.full_anchor_regions

    def index_anchored(self, region: str, status_index: int) -> bool | None:
        known = self.anchored_indices.get(region)
        return None if known is None else status_index in known

    def add_key(self, key: RegisteredKey) -> None:
        self.keys[(key.region, key.kid)] = key
