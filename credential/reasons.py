"""Reason codes of a verification verdict, one per checklist failure.

Kept in their own module, free of imports, so that the error classes
(`credential.errors`) and the verdict types (`credential.verdict`) can both name them.
The plain-words text shown to staff lives in `credential.verdict.describe`.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a presentation was not simply admitted (docs/credential-format.md §4 checklist order)."""

    # 1. parse and bounds
    MALFORMED = "malformed"
    UNSUPPORTED_VERSION = "unsupported_version"
    TOO_LARGE = "too_large"
    # a health code of another scheme, named so staff can tell the holder what to show
    FOREIGN_EU_DCC = "foreign_eu_dcc"
    FOREIGN_SHC = "foreign_shc"
    # 2. issuer region
    UNKNOWN_REGION = "unknown_region"
    # 3. key registered and not revoked
    UNKNOWN_KEY = "unknown_key"
    STATION_NEEDS_SYNC = "station_needs_sync"
    KEY_REGION_MISMATCH = "key_region_mismatch"
    KEY_COMPROMISED = "key_compromised"
    KEY_RETIRED = "key_retired"
    KEY_NOT_ACTIVE = "key_not_active"
    # 4. signature, algorithm pinned by the registered key
    ALG_MISMATCH = "alg_mismatch"
    BAD_SIGNATURE = "bad_signature"
    # 5. validity window
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    # 6. holder proof
    HOLDER_PROOF_INVALID = "holder_proof_invalid"
    PROOF_STALE = "proof_stale"
    PROOF_REPLAYED = "proof_replayed"
    CHALLENGE_MISMATCH = "challenge_mismatch"
    # 7. revocation as of the synced checkpoint
    REVOKED = "revoked"
    SOURCE_REVOKED = "source_revoked"  # a conversion whose source credential is revoked
    REVOCATION_UNKNOWN = "revocation_unknown"
    NOT_ANCHORED = "not_anchored"  # not on the region's quorum-cosigned log
    NOT_YET_ANCHORED = "not_yet_anchored"  # newer than the station's view of the log
    # 8. policy on the status colour
    STATUS_YELLOW = "status_yellow"
    STATUS_RED = "status_red"
