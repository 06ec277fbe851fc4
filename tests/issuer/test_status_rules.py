"""The status rule set R1-R7 (docs/issuer.md), one test per rule and boundary."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from credential.claims import StatusBasis, StatusColour
from issuer.status_rules import (
    DAY_S,
    NEGATIVE_TEST_S,
    HealthRecord,
    LabResult,
    Override,
    RecordKind,
    StatusRule,
    can_still_decide,
    decide_status,
)

NOW = 1_800_000_000
NEG = HealthRecord(RecordKind.TEST, NOW - 3600, LabResult.NEGATIVE)
POS = HealthRecord(RecordKind.TEST, NOW - 2 * DAY_S, LabResult.POSITIVE)


def test_override_wins_over_every_record() -> None:
    d = decide_status([NEG], NOW, Override(StatusColour.RED, NOW - 10))
    assert (d.colour, d.basis, d.rule) == (StatusColour.RED, StatusBasis.ADMIN, StatusRule.OVERRIDE)


def test_expired_override_no_longer_applies() -> None:
    d = decide_status([NEG], NOW, Override(StatusColour.RED, NOW - 100, NOW - 1))
    assert d.rule is StatusRule.NEGATIVE_TEST


def test_recent_positive_test_is_red_until_isolation_ends() -> None:
    d = decide_status([NEG, POS], NOW)
    assert d.colour is StatusColour.RED and d.valid_until == POS.at + 14 * DAY_S


def test_recovery_after_positive_lifts_red() -> None:
    rec = HealthRecord(RecordKind.RECOVERY, NOW - DAY_S)
    d = decide_status([POS, rec], NOW)
    assert (d.colour, d.basis) == (StatusColour.GREEN, StatusBasis.RECOVERY)


def test_contact_flag_is_yellow_until_cleared() -> None:
    flag = HealthRecord(RecordKind.CONTACT, NOW - DAY_S)
    assert decide_status([NEG, flag], NOW).rule is StatusRule.CONTACT_FLAG
    cleared = HealthRecord(RecordKind.CONTACT_CLEARED, NOW - 60)
    assert decide_status([NEG, flag, cleared], NOW).rule is StatusRule.NEGATIVE_TEST


def test_negative_test_is_green_for_72_hours_exactly() -> None:
    assert decide_status([NEG], NEG.at + NEGATIVE_TEST_S - 1).colour is StatusColour.GREEN
    assert decide_status([NEG], NEG.at + NEGATIVE_TEST_S).colour is StatusColour.YELLOW


def test_full_vaccination_counts_after_14_days_and_for_a_year() -> None:
    doses = [
        HealthRecord(RecordKind.VACCINATION, NOW - 60 * DAY_S),
        HealthRecord(RecordKind.VACCINATION, NOW - 10 * DAY_S),
    ]
    early = decide_status(doses, NOW)
    assert early.colour is StatusColour.YELLOW and early.valid_until == NOW + 4 * DAY_S
    later = decide_status(doses, NOW + 5 * DAY_S)
    assert (later.colour, later.basis) == (StatusColour.GREEN, StatusBasis.VACCINATION)
    assert decide_status(doses, NOW + 400 * DAY_S).colour is StatusColour.YELLOW


def test_single_dose_is_not_enough() -> None:
    d = decide_status([HealthRecord(RecordKind.VACCINATION, NOW - 60 * DAY_S)], NOW)
    assert d.rule is StatusRule.NO_EVIDENCE


def test_future_dated_records_do_not_count_yet() -> None:
    future_positive = HealthRecord(RecordKind.TEST, NOW + 60, LabResult.POSITIVE)
    assert decide_status([NEG, future_positive], NOW).colour is StatusColour.GREEN


def test_no_records_is_yellow() -> None:
    d = decide_status([], NOW)
    assert (d.colour, d.valid_until) == (StatusColour.YELLOW, None)


_RECORDS = st.builds(
    lambda kind, age, positive: HealthRecord(
        kind,
        max(0, NOW - age),
        (LabResult.POSITIVE if positive else LabResult.NEGATIVE)
        if kind is RecordKind.TEST
        else None,
    ),
    st.sampled_from(list(RecordKind)),
    # Around every period's edge: hours, two weeks, half a year, a year; a few future.
    st.integers(min_value=-2 * DAY_S, max_value=800 * DAY_S)
    | st.sampled_from([72 * 3_600, 14 * DAY_S, 180 * DAY_S, 365 * DAY_S, 379 * DAY_S]).flatmap(
        lambda edge: st.integers(edge - 2, edge + 2)
    ),
    st.booleans(),
)


@settings(max_examples=3_000, deadline=None)
@given(st.lists(_RECORDS, max_size=12))
def test_a_long_history_decides_as_its_recent_records_do(records: list[HealthRecord]) -> None:
    # What the issuer's status reads leave out (RECORD_HORIZON_S) can never change a
    # decision: the read is bounded by the rules' periods, not by the resident's history.
    kept = [r for r in records if can_still_decide(r, NOW)]
    assert decide_status(kept, NOW) == decide_status(records, NOW)


def test_old_tests_and_recoveries_are_left_out_but_every_dose_is_kept() -> None:
    years_ago = NOW - 3 * 365 * DAY_S
    assert not can_still_decide(
        HealthRecord(RecordKind.TEST, NOW - 15 * DAY_S, LabResult.NEGATIVE), NOW
    )
    assert can_still_decide(
        HealthRecord(RecordKind.TEST, NOW - 13 * DAY_S, LabResult.POSITIVE), NOW
    )
    assert not can_still_decide(HealthRecord(RecordKind.RECOVERY, NOW - 181 * DAY_S), NOW)
    assert can_still_decide(HealthRecord(RecordKind.VACCINATION, years_ago), NOW)
    # A first dose three years ago still makes last month's dose a full course.
    doses = [
        HealthRecord(RecordKind.VACCINATION, years_ago),
        HealthRecord(RecordKind.VACCINATION, NOW - 30 * DAY_S),
    ]
    assert (
        decide_status([r for r in doses if can_still_decide(r, NOW)], NOW).rule
        is StatusRule.VACCINATION
    )
