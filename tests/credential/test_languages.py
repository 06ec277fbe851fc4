"""Language tags, Accept-Language negotiation and 24-hour times in each language."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone

import pytest

from credential.languages import (
    Language,
    LanguageError,
    format_datetime,
    format_hour,
    format_time,
    language_of,
    negotiate,
    parse_language,
)

MACAU = timezone(timedelta(hours=8))
AFTERNOON = 1_796_108_645  # 2026-12-01 07:04:05 UTC, 15:04:05 in Macau and Guangdong


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("en", Language.EN),
        ("en-US", Language.EN),
        ("zh", Language.ZH_HANS),
        ("zh-CN", Language.ZH_HANS),
        ("zh-SG", Language.ZH_HANS),
        ("zh-Hans", Language.ZH_HANS),
        ("zh_Hans_CN", Language.ZH_HANS),
        ("zh-Hant", Language.ZH_HANT),
        ("zh-MO", Language.ZH_HANT),
        ("zh-HK", Language.ZH_HANT),
        ("zh-TW", Language.ZH_HANT),
        ("zh-Hant-MO", Language.ZH_HANT),
        ("yue", Language.ZH_HANT),
        ("pt", Language.PT),
        ("pt-MO", Language.PT),
        ("pt-BR", Language.PT),
        ("fr", None),
        ("*", None),
        ("", None),
        ("zh-" + "x" * 40, None),
    ],
)
def test_tag_maps_to_the_language_its_readers_read(tag: str, language: Language | None) -> None:
    assert language_of(tag) is language


def test_negotiation_takes_the_best_quality_first_and_skips_refusals() -> None:
    assert negotiate([("fr", 1.0), ("zh-MO", 0.8), ("pt", 0.9)]) is Language.PT
    assert negotiate([("pt", 0.0), ("zh-CN", 0.1)]) is Language.ZH_HANS
    assert negotiate([("zh-TW", 0.7), ("zh-CN", 0.7)]) is Language.ZH_HANT  # first wins a tie
    assert negotiate([]) is Language.EN
    assert negotiate([("de", 1.0)], default=Language.PT) is Language.PT


def test_unsupported_configured_language_names_the_supported_ones() -> None:
    assert parse_language(" zh-Hant ") is Language.ZH_HANT
    with pytest.raises(LanguageError, match="zh-Hans, zh-Hant, pt"):
        parse_language("tlh")


@pytest.mark.parametrize("language", list(Language), ids=str)
def test_times_are_on_a_24_hour_clock_in_every_language(language: Language) -> None:
    assert format_time(AFTERNOON, language, MACAU) == "15:04:05"
    assert format_hour(AFTERNOON, language, MACAU) == "15:04"  # a chart's hour tick
    text = format_datetime(AFTERNOON, language, MACAU)
    assert text.endswith("15:04") and "PM" not in text and "下午" not in text
    assert "2026" in text


def test_dates_follow_each_language() -> None:
    assert format_datetime(AFTERNOON, Language.ZH_HANS, UTC) == "2026年12月1日 07:04"
    assert format_datetime(AFTERNOON, Language.ZH_HANT, MACAU) == "2026年12月1日 15:04"
    assert format_datetime(AFTERNOON, Language.PT, MACAU).startswith("1/12/2026")
    assert format_datetime(AFTERNOON, Language.EN, MACAU) == "Dec 1, 2026 15:04"
