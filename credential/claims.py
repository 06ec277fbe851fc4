"""The health credential's claims: what border staff need, and nothing else.

Frozen dataclasses validated when built. No I/O, no clock: times are integer Unix
seconds passed in by the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from credential.errors import ClaimsError

REGION_RE = re.compile(r"^[A-Z]{2,8}$")
KID_RE = re.compile(r"^[A-Za-z0-9_-]{4,64}$")
MAX_STATUS_INDEX = 2**40 - 1  # index space per region; far above any population
MAX_MASKED_NAME_CHARS = 32  # characters
MAX_DOCUMENT_HINT_CHARS = 16  # characters
# Region codes and key ids checked against the patterns above are remembered: a station
# meets a handful of each, and every scan builds claims (the regex engine stays out of
# the scan's path, and with it out of the caches the signature checks need).
VALIDATED_NAMES_CACHE_SIZE = 256


@lru_cache(maxsize=VALIDATED_NAMES_CACHE_SIZE)
def _is_region(name: str) -> bool:
    return REGION_RE.fullmatch(name) is not None


@lru_cache(maxsize=VALIDATED_NAMES_CACHE_SIZE)
def _is_kid(name: str) -> bool:
    return KID_RE.fullmatch(name) is not None


class StatusColour(StrEnum):
    """The resident's health-code colour."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class StatusBasis(StrEnum):
    """Why the resident has that colour: the issuer's record, never a claim.

    Format version 1 carried the basis (and its date) in the credential; version 2 does
    not: a vaccination / test / recovery basis is health data that border staff do not
    need to decide, and every camera pointed at a QR could read it.
    """

    VACCINATION = "vaccination"
    TEST = "test"  # a negative test; basis_time is when the sample was taken
    RECOVERY = "recovery"
    ADMIN = "admin"  # an admin decision (override, contact tracing)


@dataclass(frozen=True)
class SourceRef:
    """The credential a converted credential was made from: its region and status index.

    A few bytes on the wire (`src`), no personal data: enough for a station to look the
    source up in the source region's revocation state, and for the source region's
    issuer to find its own resident's record when the code is converted back."""

    region: str
    status_index: int

    def __post_init__(self) -> None:
        if not _is_region(self.region):
            raise ClaimsError(f"source region must be 2-8 capital letters, found {self.region!r}")
        if not 0 <= self.status_index <= MAX_STATUS_INDEX:
            raise ClaimsError(f"source status_index out of range: {self.status_index}")


# Frozen dataclasses built on every scan write their own `__init__` (the class is then
# declared `init=False`): the generated one of a frozen dataclass stores each field with
# its own `object.__setattr__` call, about 0.15 us a field on this project's machines,
# where storing the instance dictionary whole is one call. The parameters are the
# fields, in order, with the same defaults, so construction, `dataclasses.replace`,
# equality, hashing and the refusal of assignment are all as before.


@dataclass(frozen=True, init=False)
class HealthClaims:
    """The claims of one credential, validated on construction.

    `holder_key` is the DER SubjectPublicKeyInfo of the resident's device key; it is
    rendered as an RFC 7800 `cnf` confirmation claim. `source` is set on a credential
    converted from another region's credential (and only there).
    """

    region: str
    kid: str
    status_index: int
    issued_at: int
    not_before: int
    expires_at: int
    colour: StatusColour
    masked_name: str
    document_hint: str
    holder_key: bytes
    source: SourceRef | None = None

    def __init__(
        self,
        region: str,
        kid: str,
        status_index: int,
        issued_at: int,
        not_before: int,
        expires_at: int,
        colour: StatusColour,
        masked_name: str,
        document_hint: str,
        holder_key: bytes,
        source: SourceRef | None = None,
    ) -> None:
        if not _is_region(region):
            raise ClaimsError(f"region must be 2-8 capital letters, found {region!r}")
        if not _is_kid(kid):
            raise ClaimsError(f"kid must be 4-64 base64url characters, found {kid!r}")
        if not 0 <= status_index <= MAX_STATUS_INDEX:
            raise ClaimsError(f"status_index out of range: {status_index}")
        if not issued_at <= expires_at or not not_before <= expires_at:
            raise ClaimsError("expires_at must not precede issued_at or not_before")
        if not isinstance(colour, StatusColour):
            raise ClaimsError(f"colour must be a StatusColour, found {colour!r}")
        if not 0 < len(masked_name) <= MAX_MASKED_NAME_CHARS:
            raise ClaimsError("masked_name must be 1-32 characters")
        if len(document_hint) > MAX_DOCUMENT_HINT_CHARS:
            raise ClaimsError("document_hint must be at most 16 characters")
        if not holder_key:
            raise ClaimsError("holder_key (device public key) is required")
        if source is not None:
            if not isinstance(source, SourceRef):
                raise ClaimsError(f"source must be a SourceRef, found {source!r}")
            if source.region == region:
                raise ClaimsError("a converted credential's source is in another region")
        object.__setattr__(
            self,
            "__dict__",
            {
                "region": region,
                "kid": kid,
                "status_index": status_index,
                "issued_at": issued_at,
                "not_before": not_before,
                "expires_at": expires_at,
                "colour": colour,
                "masked_name": masked_name,
                "document_hint": document_hint,
                "holder_key": holder_key,
                "source": source,
            },
        )
