"""station.toml: round trip, defaults that fail closed, malformed files refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from credential.claims import StatusColour
from credential.verdict import Decision, StationPolicy
from ledger.clients.sync import SourcePace
from verifier.config import StationConfig, StationDir, parse_config, render_config
from verifier.errors import StationConfigError


def test_default_policy_fails_closed() -> None:
    c = parse_config(render_config(StationConfig()))
    assert c.policy.on_revocation_unknown is Decision.DENY
    assert c.policy.colours[StatusColour.YELLOW] is Decision.MANUAL_CHECK
    assert c.policy.colours[StatusColour.RED] is Decision.DENY


def test_round_trip_of_a_lenient_station() -> None:
    policy = StationPolicy(
        {
            StatusColour.GREEN: Decision.ADMIT,
            StatusColour.YELLOW: Decision.ADMIT,
            StatusColour.RED: Decision.MANUAL_CHECK,
        },
        max_sync_age_s=600,
        on_revocation_unknown=Decision.MANUAL_CHECK,
    )
    c = StationConfig("gate-3", policy, sync_interval_s=60, kiosk_port=9000, dedupe_s=2.5)
    text = render_config(c)
    assert parse_config(text) == c
    assert render_config(parse_config(text.encode())) == text


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("version = 2", "version"),
        ("this is not toml", "TOML"),
        ('version = 1\nname = "x"', "policy"),
        (
            'version = 1\nname = "x"\nsync_interval_s = 60\nkiosk_port = 8088\ndedupe_s = 4.0\n'
            '[policy]\nmax_sync_age_s = 10\non_revocation_unknown = "deny"\n'
            '[policy.colours]\ngreen = "admit"\n',
            "missing",
        ),
        (
            'version = 1\nname = "x"\nsync_interval_s = 60\nkiosk_port = 8088\ndedupe_s = 4.0\n'
            '[policy]\nmax_sync_age_s = 10\non_revocation_unknown = "maybe"\n'
            '[policy.colours]\ngreen = "admit"\nyellow = "deny"\nred = "deny"\n',
            "policy",
        ),
        (
            'version = 1\nname = "x"\nsync_interval_s = true\nkiosk_port = 8088\ndedupe_s = 4.0\n'
            '[policy]\nmax_sync_age_s = 10\non_revocation_unknown = "deny"\n'
            '[policy.colours]\ngreen = "admit"\nyellow = "deny"\nred = "deny"\n',
            "sync_interval_s",
        ),
    ],
)
def test_malformed_config_names_the_problem(text: str, field: str) -> None:
    with pytest.raises(StationConfigError, match=field):
        parse_config(text)


def test_binary_junk_is_refused() -> None:
    with pytest.raises(StationConfigError):
        parse_config(b"\xff\xfe\x00junk")
    with pytest.raises(StationConfigError, match="at most"):
        parse_config(b"#" * (70 * 1024))


def test_missing_station_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(StationConfigError, match="verifier init"):
        StationDir(tmp_path).load()


def test_station_language_round_trips_and_older_files_speak_english() -> None:
    from credential.languages import Language

    c = StationConfig(name="gate-7", language=Language.ZH_HANT)
    assert parse_config(render_config(c)) == c
    older = render_config(StationConfig()).replace('language = "en"\n', "")
    assert "language" not in older
    assert parse_config(older).language is Language.EN


@pytest.mark.parametrize("value", ['"klingon"', "7", '""'])
def test_unsupported_station_language_names_the_field(value: str) -> None:
    text = render_config(StationConfig()).replace('language = "en"', f"language = {value}")
    with pytest.raises(StationConfigError, match="language"):
        parse_config(text)


def test_language_chosen_on_the_kiosk_is_kept_in_station_toml(tmp_path: Path) -> None:
    from credential.languages import Language

    d = StationDir(tmp_path)
    d.config.write_text(render_config(StationConfig(name="gate-2", dedupe_s=2.5)))
    d.save_language(Language.PT)
    again = d.load()
    assert again.language is Language.PT and again.name == "gate-2" and again.dedupe_s == 2.5


def test_sync_pace_round_trips_and_older_files_keep_the_defaults() -> None:
    c = StationConfig(sync_pace=SourcePace(min_s=5.0, max_avg_s=0.5, cap_s=30.0))
    text = render_config(c)
    assert "[sync_pace]" in text
    assert parse_config(text) == c
    assert "sync_pace" not in render_config(StationConfig())
    assert parse_config(render_config(StationConfig())).sync_pace == SourcePace()


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ("[sync_pace]\nmin_s = 30\ncap_s = 10\n", "min_s <= cap_s"),
        ("[sync_pace]\nmax_avg_s = 0\n", "max_avg_s > 0"),
        ("[sync_pace]\nmax_avg_s = true\n", "sync_pace.max_avg_s"),
        ("[sync_pace]\nbudget_s = 10\n", "budget_s"),
    ],
)
def test_malformed_sync_pace_names_the_problem(table: str, problem: str) -> None:
    with pytest.raises(StationConfigError, match=problem):
        parse_config(render_config(StationConfig()) + table)
    with pytest.raises(StationConfigError, match=r"^sync_pace: expected <class 'dict'>"):
        parse_config("sync_pace = 3\n" + render_config(StationConfig()))
