"""The health-status rule set: a resident's records -> colour, basis and validity.

Pure: records and the reference time in, a `StatusDecision` out. No database, no
clock. The rules are evaluated in a fixed order and the first that applies wins; the
order and the periods are documented in docs/issuer.md ("Status rules"):

  R1 an active admin override            -> its colour, basis admin
  R2 positive test in the last 14 days   -> red, basis test
     (unless a recovery was recorded after the sample)
  R3 contact-tracing flag in the last 14 days, not cleared -> yellow, basis admin
  R4 negative test sample in the last 72 hours            -> green, basis test
  R5 recovery in the last 180 days                        -> green, basis recovery
  R6 full vaccination (>= 2 doses, last dose >= 14 days ago and <= 365 days ago)
                                                          -> green, basis vaccination
  R7 nothing of the above                                 -> yellow, basis admin

`valid_until` is when the decision would change by itself (a test ageing out, an
isolation period ending); the issuer caps credential validity at it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from credential.claims import StatusBasis, StatusColour

DAY_S = 86_400  # seconds
ISOLATION_S = 14 * DAY_S  # a positive test keeps the resident red this long
CONTACT_FLAG_S = 14 * DAY_S  # a contact-tracing flag keeps the resident yellow this long
NEGATIVE_TEST_S = 72 * 3_600  # a negative test sample is good for 72 hours
RECOVERY_S = 180 * DAY_S  # a recovery counts for 180 days
VACCINE_DOSES_FULL = 2  # doses for a full primary course
VACCINE_EFFECTIVE_AFTER_S = 14 * DAY_S  # protection counts 14 days after the last dose
VACCINE_VALID_S = 365 * DAY_S  # and for a year after it


class RecordKind(StrEnum):
    VACCINATION = "vaccination"
    TEST = "test"
    RECOVERY = "recovery"
    CONTACT = "contact"  # a contact-tracing flag
    CONTACT_CLEARED = "contact_cleared"  # the flag lifted by the health authority


class LabResult(StrEnum):
    POSITIVE = "positive"
    NEGATIVE = "negative"


class StatusRule(StrEnum):
    """Which rule decided; recorded with every issued credential for audit."""

    OVERRIDE = "R1_override"
    POSITIVE_TEST = "R2_positive_test"
    CONTACT_FLAG = "R3_contact_flag"
    NEGATIVE_TEST = "R4_negative_test"
    RECOVERY = "R5_recovery"
    VACCINATION = "R6_vaccination"
    NO_EVIDENCE = "R7_no_evidence"


@dataclass(frozen=True)
class HealthRecord:
    """One fact from the health authority. `at` is Unix seconds (sample time for tests)."""

    kind: RecordKind
    at: int
    result: LabResult | None = None

    def __post_init__(self) -> None:
        if (self.kind is RecordKind.TEST) != (self.result is not None):
            raise ValueError(
                f"expected a result exactly for test records, found kind={self.kind} "
                f"result={self.result}"
            )
        if self.at < 0:
            raise ValueError(f"expected a non-negative time, found {self.at}")


@dataclass(frozen=True)
class Override:
    """An admin's decision, active from `at` until `until` (None: until lifted)."""

    colour: StatusColour
    at: int
    until: int | None = None


@dataclass(frozen=True)
class StatusDecision:
    colour: StatusColour
    basis: StatusBasis
    basis_time: int | None
    valid_until: int | None  # None: nothing in the records makes it change by itself
    rule: StatusRule


def decide_status(
    records: Iterable[HealthRecord], now: int, override: Override | None = None
) -> StatusDecision:
    """Apply rules R1-R7 (see the module docstring) to the records as of `now`.

    Records dated in the future (after `now`) are ignored: they cannot count yet.
    """
    if (
        override is not None
        and override.at <= now
        and (override.until is None or now < override.until)
    ):
        return StatusDecision(
            override.colour, StatusBasis.ADMIN, override.at, override.until, StatusRule.OVERRIDE
        )
    past = sorted((r for r in records if r.at <= now), key=lambda r: r.at)

    def latest(kind: RecordKind, result: LabResult | None = None) -> HealthRecord | None:
        found = [r for r in past if r.kind is kind and (result is None or r.result is result)]
        return found[-1] if found else None

    positive = latest(RecordKind.TEST, LabResult.POSITIVE)
    recovery = latest(RecordKind.RECOVERY)
    recovered_since = recovery is not None and positive is not None and recovery.at >= positive.at
    if positive is not None and now < positive.at + ISOLATION_S and not recovered_since:
        return StatusDecision(
            StatusColour.RED,
            StatusBasis.TEST,
            positive.at,
            positive.at + ISOLATION_S,
            StatusRule.POSITIVE_TEST,
        )
    flag = latest(RecordKind.CONTACT)
    cleared = latest(RecordKind.CONTACT_CLEARED)
    cleared_since = cleared is not None and flag is not None and cleared.at >= flag.at
    if flag is not None and now < flag.at + CONTACT_FLAG_S and not cleared_since:
        return StatusDecision(
            StatusColour.YELLOW,
            StatusBasis.ADMIN,
            flag.at,
            flag.at + CONTACT_FLAG_S,
            StatusRule.CONTACT_FLAG,
        )
    negative = latest(RecordKind.TEST, LabResult.NEGATIVE)
    if negative is not None and now < negative.at + NEGATIVE_TEST_S:
        return StatusDecision(
            StatusColour.GREEN,
            StatusBasis.TEST,
            negative.at,
            negative.at + NEGATIVE_TEST_S,
            StatusRule.NEGATIVE_TEST,
        )
    if recovery is not None and now < recovery.at + RECOVERY_S:
        return StatusDecision(
            StatusColour.GREEN,
            StatusBasis.RECOVERY,
            recovery.at,
            recovery.at + RECOVERY_S,
            StatusRule.RECOVERY,
        )
    doses = [r for r in past if r.kind is RecordKind.VACCINATION]
    if len(doses) >= VACCINE_DOSES_FULL:
        last = doses[-1].at
        start, end = last + VACCINE_EFFECTIVE_AFTER_S, last + VACCINE_VALID_S
        if start <= now < end:
            return StatusDecision(
                StatusColour.GREEN, StatusBasis.VACCINATION, last, end, StatusRule.VACCINATION
            )
        if now < start:
            # Yellow now, green by itself once the last dose takes effect.
            return StatusDecision(
                StatusColour.YELLOW, StatusBasis.ADMIN, None, start, StatusRule.NO_EVIDENCE
            )
    return StatusDecision(
        StatusColour.YELLOW, StatusBasis.ADMIN, None, None, StatusRule.NO_EVIDENCE
    )


# How far back a record of each kind can still change a decision (None: at any age).
# A resident who tests every few days for a year has hundreds of records; reading only
# these keeps a status read bounded by the rules' periods, not by the history.
#   test: a positive counts ISOLATION_S (R2), a negative NEGATIVE_TEST_S (R4).
#   recovery: RECOVERY_S (R5). In R2 it only counts when not older than a positive
#     that is itself within ISOLATION_S, which is shorter.
#   contact / contact_cleared: CONTACT_FLAG_S (R3); a clearing only counts when not
#     older than a flag that is itself within CONTACT_FLAG_S.
#   vaccination: any age: R6 counts every dose, and a first dose years ago still makes
#     a recent second one a full course.
# Dropping older records leaves every `latest(...)` of decide_status either unchanged
# or one that no rule can use; tests/issuer/test_status_rules.py checks the
# equivalence on generated histories.
RECORD_HORIZON_S: Mapping[RecordKind, int | None] = MappingProxyType(
    {
        RecordKind.TEST: max(ISOLATION_S, NEGATIVE_TEST_S),
        RecordKind.RECOVERY: RECOVERY_S,
        RecordKind.CONTACT: CONTACT_FLAG_S,
        RecordKind.CONTACT_CLEARED: CONTACT_FLAG_S,
        RecordKind.VACCINATION: None,
    }
)


def can_still_decide(record: HealthRecord, now: int) -> bool:
    """Whether `record` may still change decide_status at `now` (RECORD_HORIZON_S);
    records dated after `now` are kept, as they will count once their time comes."""
    horizon = RECORD_HORIZON_S[record.kind]
    return horizon is None or record.at > now - horizon
