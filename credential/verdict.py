"""The outcome of verifying a presentation, in terms a border station displays.

`Verdict` carries a decision (admit / deny / manual check), the typed reasons, and
only the fields staff need to match the person (masked name, document hint), shown
only once the issuer's signature has verified. `StationPolicy` maps status colours
and an unknown revocation state to decisions; the default fails closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from credential.claims import StatusColour
from credential.languages import N_
from credential.reasons import Reason

__all__ = [
    "DEFAULT_MAX_SYNC_AGE_S",
    "DEFAULT_POLICY",
    "Decision",
    "DisplayFields",
    "Reason",
    "StationPolicy",
    "Verdict",
    "describe",
]

DEFAULT_MAX_SYNC_AGE_S = 6 * 3600  # seconds a station's revocation view stays trusted


class Decision(StrEnum):
    ADMIT = "admit"
    DENY = "deny"
    MANUAL_CHECK = "manual_check"


_DESCRIPTIONS: dict[Reason, str] = {
    Reason.MALFORMED: N_("This is not a readable HealthBridge code."),
    Reason.UNSUPPORTED_VERSION: N_("The code uses a format version this station does not know."),
    Reason.TOO_LARGE: N_("The code holds far more data than a health code can."),
    Reason.FOREIGN_EU_DCC: N_(
        "This is an EU Digital COVID Certificate, not a HealthBridge code:"
        " it is not accepted at this checkpoint."
    ),
    Reason.FOREIGN_SHC: N_(
        "This is a SMART Health Card, not a HealthBridge code:"
        " it is not accepted at this checkpoint."
    ),
    Reason.UNKNOWN_REGION: N_("The code names a region outside the consortium."),
    Reason.UNKNOWN_KEY: N_("The code was signed by a key its region never registered."),
    Reason.STATION_NEEDS_SYNC: N_("The code is newer than this station's data: sync the station."),
    Reason.KEY_REGION_MISMATCH: N_("The signing key belongs to another region than the code."),
    Reason.KEY_COMPROMISED: N_("The signing key was compromised and this code is not covered."),
    Reason.KEY_RETIRED: N_("The code was signed after its key was retired."),
    Reason.KEY_NOT_ACTIVE: N_("The code was signed outside its key's validity period."),
    Reason.ALG_MISMATCH: N_("The code claims a signature algorithm its key does not allow."),
    Reason.BAD_SIGNATURE: N_("The issuer's signature is invalid: the code was altered or forged."),
    Reason.EXPIRED: N_("The health code has expired."),
    Reason.NOT_YET_VALID: N_("The health code is not valid yet."),
    Reason.HOLDER_PROOF_INVALID: N_(
        "The phone showing the code is not the phone it was issued to."
    ),
    Reason.PROOF_STALE: N_("The code is a copy or screenshot: ask for the live code."),
    Reason.PROOF_REPLAYED: N_("This exact code was already scanned: ask for the live code."),
    Reason.CHALLENGE_MISMATCH: N_("The code does not answer this station's challenge."),
    Reason.REVOKED: N_("The health code has been revoked."),
    Reason.SOURCE_REVOKED: N_("The code was converted from a home-region code that is revoked."),
    Reason.NOT_ANCHORED: N_("The code is not on its region's ledger: it was never issued there."),
    Reason.NOT_YET_ANCHORED: N_(
        "The code is newer than this station's ledger data: sync the station."
    ),
    Reason.REVOCATION_UNKNOWN: N_("The station's revocation data is too old: sync the station."),
    Reason.STATUS_YELLOW: N_("Status is yellow: check the person's documents."),
    Reason.STATUS_RED: N_("Status is red."),
}


def describe(reason: Reason) -> str:
    """Plain words for staff, in English; pages translate them through their catalogs
    (the English text is the gettext message id)."""
    return _DESCRIPTIONS[reason]


@dataclass(frozen=True, init=False)
class DisplayFields:
    """What staff see to match the person; set only after the signature verified."""

    region: str
    masked_name: str
    document_hint: str
    colour: StatusColour
    expires_at: int

    # Written out rather than generated: see the note above `credential.claims.HealthClaims`.
    def __init__(
        self,
        region: str,
        masked_name: str,
        document_hint: str,
        colour: StatusColour,
        expires_at: int,
    ) -> None:
        object.__setattr__(
            self,
            "__dict__",
            {
                "region": region,
                "masked_name": masked_name,
                "document_hint": document_hint,
                "colour": colour,
                "expires_at": expires_at,
            },
        )


@dataclass(frozen=True, init=False)
class Verdict:
    decision: Decision
    reasons: tuple[Reason, ...]
    colour: StatusColour | None
    display: DisplayFields | None
    region: str | None
    # Hex of the first 8 digest bytes. The digest is anchored on the public log and kept
    # by the issuer, so this joins to a person: never log it as is (verifier.scanlog
    # keys it with the station's secret first).
    digest_prefix: str | None
    sync_age_s: int | None

    # Written out rather than generated: see the note above `credential.claims.HealthClaims`.
    def __init__(
        self,
        decision: Decision,
        reasons: tuple[Reason, ...],
        colour: StatusColour | None,
        display: DisplayFields | None,
        region: str | None,
        digest_prefix: str | None,
        sync_age_s: int | None,
    ) -> None:
        object.__setattr__(
            self,
            "__dict__",
            {
                "decision": decision,
                "reasons": reasons,
                "colour": colour,
                "display": display,
                "region": region,
                "digest_prefix": digest_prefix,
                "sync_age_s": sync_age_s,
            },
        )

    @property
    def admitted(self) -> bool:
        return self.decision is Decision.ADMIT


def _default_colours() -> Mapping[StatusColour, Decision]:
    return MappingProxyType(
        {
            StatusColour.GREEN: Decision.ADMIT,
            StatusColour.YELLOW: Decision.MANUAL_CHECK,
            StatusColour.RED: Decision.DENY,
        }
    )


@dataclass(frozen=True)
class StationPolicy:
    """How a station turns a verified status into a decision.

    `on_revocation_unknown` applies when the station's view of the region is older
    than `max_sync_age_s` (or was never synced); DENY by default (fail closed).
    """

    colours: Mapping[StatusColour, Decision] = field(default_factory=_default_colours)
    max_sync_age_s: int = DEFAULT_MAX_SYNC_AGE_S
    on_revocation_unknown: Decision = Decision.DENY

    def __post_init__(self) -> None:
        missing = set(StatusColour) - set(self.colours)
        if missing:
            raise ValueError(f"policy must decide every colour, missing {sorted(missing)}")
        if self.max_sync_age_s < 0:
            raise ValueError("max_sync_age_s must be non-negative")


DEFAULT_POLICY = StationPolicy()
