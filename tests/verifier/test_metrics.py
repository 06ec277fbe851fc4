"""verifier.metrics: scans by decision and reason, and readiness by the age of views."""

from __future__ import annotations

from prometheus_client import generate_latest

from verifier.metrics import StationMetrics


def test_station_is_not_ready_when_a_region_view_is_past_policy() -> None:
    ages = {"GD": 30, "MO": 900}
    m = StationMetrics.create(lambda: ages, 600)
    (check,) = m.checks
    try:
        check.probe()
    except Exception as e:
        assert "MO" in str(e) and "GD" not in str(e)
    else:
        raise AssertionError("a view past the policy must make the station not ready")
    ages["MO"] = 10
    check.probe()
    text = generate_latest(m.registry).decode()
    assert 'healthbridge_station_sync_age_seconds{region="MO"} 10.0' in text
    assert "healthbridge_station_max_sync_age_seconds 600.0" in text


def test_never_synced_region_is_reported_and_not_ready() -> None:
    m = StationMetrics.create(lambda: {"GD": None}, 600)
    text = generate_latest(m.registry).decode()
    assert 'healthbridge_station_never_synced{region="GD"} 1.0' in text
