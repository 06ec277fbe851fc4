"""Server-rendered SVG charts for the console: pure functions from numbers to markup.

What it does: `bar_chart` draws one series of counts as bars with a labelled value
axis and hour ticks; `meter` draws an age (or a depth) as a horizontal bar against a
limit, green / amber / red by how close it is. Each chart carries a <title> and an
aria-label, and the page next to it writes the same numbers out, so colour is never
the only signal. Only SVG presentation attributes are used (no inline style, no
script), so the console's Content-Security-Policy needs no exception, and nothing is
fetched: the page makes no request for its charts.

What it does not: know where the numbers come from (issuer.admin.overview) or translate:
the view passes its labels in already in the admin's language, and `duration_text`
takes the view's gettext for its unit words (marked here with `N_` for the console's
catalogs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from markupsafe import Markup, escape

from credential.languages import N_

BAR_CHART_WIDTH = 720  # SVG user units; the browser scales the chart to its box
BAR_CHART_HEIGHT = 200
METER_WIDTH = 480
METER_HEIGHT = 28
AXIS_LEFT = 56  # room for the value labels
AXIS_BOTTOM = 22  # room for the hour labels
TOP_PAD = 10
TICK_CHAR_W = 7.5  # SVG units a 12-unit digit or colon takes at most, to keep ticks inside
WARN_SHARE = 0.5  # a meter turns amber past half its limit, red past the limit
INK = "#111111"
MUTED = "#5b6473"
GRID = "#d5d9e0"


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    BAD = "bad"


LEVEL_FILL = {Level.OK: "#0a7d32", Level.WARN: "#d89b00", Level.BAD: "#b3121b"}


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (at least 1)."""
    if value <= 1:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def axis_steps(top: int) -> int:
    """How many equal whole-number steps divide the axis 0..top (4 or 5 when possible)."""
    for n in (4, 5, 2):
        if top % n == 0:
            return n
    return 1


@dataclass(frozen=True)
class Bar:
    label: str  # the tick under the bar (e.g. the hour "14")
    value: int
    title: str  # what a tooltip / screen reader says for this bar


def bar_chart(bars: Sequence[Bar], title: str, fill: str, tick_every: int = 3) -> Markup:
    """Vertical bars, one per item, on a 0..nice-ceiling axis with three gridlines."""
    if not bars:
        raise ValueError("expected at least one bar")
    if any(b.value < 0 for b in bars):
        raise ValueError("expected counts >= 0")
    top = nice_ceiling(max(b.value for b in bars))
    plot_w = BAR_CHART_WIDTH - AXIS_LEFT
    plot_h = BAR_CHART_HEIGHT - AXIS_BOTTOM - TOP_PAD
    slot = plot_w / len(bars)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart bar-chart" role="img" '
        f'viewBox="0 0 {BAR_CHART_WIDTH} {BAR_CHART_HEIGHT}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    steps = axis_steps(top)
    for i in range(steps + 1):  # gridlines and whole-number value labels
        v = top * i // steps
        y = TOP_PAD + plot_h - plot_h * i / steps
        label = str(v)
        parts.append(
            f'<line x1="{AXIS_LEFT}" x2="{BAR_CHART_WIDTH}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{AXIS_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="12" '
            f'fill="{MUTED}">{label}</text>'
        )
    for i, b in enumerate(bars):
        h = plot_h * b.value / top
        x = AXIS_LEFT + i * slot + slot * 0.15
        y = TOP_PAD + plot_h - h
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" fill="{escape(fill)}" data-value="{b.value}">'
            f"<title>{escape(b.title)}</title></rect>"
        )
        if i % tick_every == 0 or i == len(bars) - 1:
            # Centred under its bar, but kept inside the chart: the last tick of a
            # wide label ("10:00") ends at the right edge instead of being cut off.
            centre = x + slot * 0.35
            anchor = "middle"
            if centre + len(b.label) * TICK_CHAR_W / 2 > BAR_CHART_WIDTH:
                centre, anchor = BAR_CHART_WIDTH, "end"
            parts.append(
                f'<text x="{centre:.1f}" y="{BAR_CHART_HEIGHT - 6}" text-anchor="{anchor}" '
                f'font-size="12" fill="{MUTED}">{escape(b.label)}</text>'
            )
    parts.append("</svg>")
    # Every text interpolated above went through escape(); the rest are numbers.
    return Markup("".join(parts))  # noqa: S704


def level_of(value: float | None, limit: float) -> Level:
    """OK below half the limit, WARN up to it, BAD past it (or unknown)."""
    if value is None or value > limit:
        return Level.BAD
    return Level.WARN if value > limit * WARN_SHARE else Level.OK


def meter(value: float | None, limit: float, title: str, text: str) -> Markup:
    """A horizontal bar: `value` against `limit` (the bar is full at the limit or past
    it, and for an unknown value). `text` is written on the bar, e.g. "3 min"."""
    if limit <= 0:
        raise ValueError("expected a positive limit")
    level = level_of(value, limit)
    share = 1.0 if value is None else min(1.0, max(0.0, value / limit))
    w = max(2.0, (METER_WIDTH - 2) * share)
    # Every text interpolated below goes through escape(); the rest are numbers.
    return Markup(  # noqa: S704
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart meter {level.value}" role="img" '
        f'viewBox="0 0 {METER_WIDTH} {METER_HEIGHT}" aria-label="{escape(title)}: {escape(text)}" '
        f'data-level="{level.value}">'
        f"<title>{escape(title)}: {escape(text)}</title>"
        f'<rect x="1" y="1" width="{METER_WIDTH - 2}" height="{METER_HEIGHT - 2}" rx="5" '
        f'fill="#eceff3" stroke="{GRID}"/>'
        f'<rect class="fill" x="1" y="1" width="{w:.1f}" height="{METER_HEIGHT - 2}" rx="5" '
        f'fill="{LEVEL_FILL[level]}"/>'
        f'<text x="10" y="{METER_HEIGHT / 2 + 5:.1f}" font-size="14" font-weight="700" '
        f'fill="{INK if share < 0.3 else "#ffffff"}">{escape(text)}</text>'
        "</svg>"
    )


def duration_text(seconds: int | None, words: Callable[[str], str] = str) -> str:
    """A short age: "45 s", "12 min", "3 h 05 min", "2 d 4 h"; "—" when unknown.
    `words` translates the unit pattern (the console passes gettext; English without)."""
    if seconds is None:
        return "—"
    if seconds < 120:
        return words(N_("%(seconds)s s")) % {"seconds": seconds}
    minutes = seconds // 60
    if minutes < 120:
        return words(N_("%(minutes)s min")) % {"minutes": minutes}
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        pattern = words(N_("%(hours)s h %(minutes)s min"))
        return pattern % {"hours": hours, "minutes": f"{minutes:02d}"}
    days, hours = divmod(hours, 24)
    return words(N_("%(days)s d %(hours)s h")) % {"days": days, "hours": hours}
