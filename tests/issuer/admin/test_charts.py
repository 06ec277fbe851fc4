"""issuer.admin.charts: SVG that parses, bars in proportion, escaped text, meters
coloured by their limit."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from issuer.admin.charts import (
    Bar,
    Level,
    bar_chart,
    duration_text,
    level_of,
    meter,
    nice_ceiling,
)

SVG = "{http://www.w3.org/2000/svg}"


def test_bars_are_in_proportion_on_a_round_axis() -> None:
    svg = ET.fromstring(str(bar_chart([Bar("00", 10, "a"), Bar("01", 40, "b")], "t", "#00f")))
    heights = [float(r.get("height")) for r in svg.iter(f"{SVG}rect")]
    assert heights[1] == pytest.approx(4 * heights[0])
    labels = [x.text for x in svg.iter(f"{SVG}text")]
    assert labels[:6] == ["0", "10", "20", "30", "40", "50"]  # 40 rounds up to 50


def test_chart_text_is_escaped() -> None:
    markup = str(bar_chart([Bar("<b>", 1, '"><script>x</script>')], "<title>", "#00f"))
    assert "<script>" not in markup and "<b>" not in markup
    ET.fromstring(markup)  # still well-formed XML


def test_meter_levels_follow_the_limit() -> None:
    assert level_of(10, 60) is Level.OK
    assert level_of(40, 60) is Level.WARN
    assert level_of(61, 60) is Level.BAD
    assert level_of(None, 60) is Level.BAD  # unknown is shown as the worst case
    svg = ET.fromstring(str(meter(90, 60, "oldest", "90 s")))
    assert svg.get("data-level") == "bad"


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one bar"):
        bar_chart([], "t", "#000")
    with pytest.raises(ValueError, match="counts >= 0"):
        bar_chart([Bar("x", -1, "")], "t", "#000")
    with pytest.raises(ValueError, match="positive limit"):
        meter(1, 0, "t", "x")


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (420, 500), (999, 1000)]
)
def test_nice_ceiling(value: int, top: int) -> None:
    assert nice_ceiling(value) == top


def test_durations_read_naturally() -> None:
    assert [duration_text(s) for s in (None, 45, 600, 3 * 3600 + 300, 50 * 3600)] == [
        "—", "45 s", "10 min", "3 h 05 min", "2 d 2 h",
    ]  # fmt: skip


def test_last_hour_tick_stays_inside_the_chart() -> None:
    bars = [Bar(f"{h:02d}:00", h, "") for h in range(24)]
    svg = ET.fromstring(str(bar_chart(bars, "t", "#00f")))
    last = next(t for t in svg.iter(f"{SVG}text") if t.text == "23:00")
    assert last.get("text-anchor") == "end" and float(last.get("x")) <= 720
    first = next(t for t in svg.iter(f"{SVG}text") if t.text == "00:00")
    assert first.get("text-anchor") == "middle"


def test_durations_take_the_callers_words() -> None:
    zh = {
        "%(minutes)s min": "%(minutes)s 分钟",
        "%(hours)s h %(minutes)s min": "%(hours)s 小时 %(minutes)s 分钟",
    }
    assert duration_text(600, lambda s: zh.get(s, s)) == "10 分钟"
    assert duration_text(3 * 3600 + 300, lambda s: zh.get(s, s)) == "3 小时 05 分钟"
