"""What the console's overview page shows, gathered in one place.

What it does: `hourly_activity` gives credentials issued and revoked in each UTC hour
of the last day (the running counts of issuer.activity: a region issues millions a
day, and the page never reads them); `freshness`
turns each region's checkpoint view (issuer.ledger_state) into the age of its newest
cosignature and of each witness's, against the policy a station applies;
`fetch_alarms` reads the fork and misbehaviour evidence the region's own ledger node
holds (`GET /v1/alarms`, docs/ledger-protocol.md) with a short timeout. Everything
here is counts, ages, origins and witness names: no resident data.

What it does not: draw (issuer.admin.charts) or check permissions (the console's
`AdminOps.overview` does, then calls these).
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from common.observability import outgoing_headers
from issuer import activity
from issuer.context import IssuerContext
from issuer.ledger_state import LedgerAlarm, RegionLedger

ISSUED_KIND = "credential_anchored"  # outbox kinds (issuer.issuance)
REVOKED_KIND = "credential_revoked"
HOUR_S = 3600  # seconds
DAY_HOURS = 24
ALARMS_TIMEOUT_S = 2.0  # seconds: the page waits on it
MAX_ALARMS_SHOWN = 10
MAX_ALARMS_BYTES = 1 << 20  # bytes of a /v1/alarms answer read at most


@dataclass(frozen=True)
class HourlyActivity:
    """Counts per UTC hour, oldest first; `start` is the first hour's Unix time."""

    start: int
    issued: tuple[int, ...]
    revoked: tuple[int, ...]

    @property
    def hours(self) -> tuple[int, ...]:
        return tuple(self.start + i * HOUR_S for i in range(len(self.issued)))


def hourly_activity(ctx: IssuerContext, now: int, hours: int = DAY_HOURS) -> HourlyActivity:
    """Issued and revoked per hour for the `hours` hours ending with the current one.

    Read from the running counts that every issuance (`credential_anchored`) and
    revocation (`credential_revoked`) adds to in its own transaction
    (issuer.activity): at most hours x 2 x activity.SLOTS small rows, whatever the
    day's volume."""
    start = (now // HOUR_S - (hours - 1)) * HOUR_S
    issued, revoked = [0] * hours, [0] * hours
    with ctx.read_session() as s:
        # Only these two kinds: the table also holds the metrics' first-credential counts.
        for hour, kind, n in activity.counts_since(s, start, (ISSUED_KIND, REVOKED_KIND)):
            b = (hour - start) // HOUR_S
            if 0 <= b < hours:
                (issued if kind == ISSUED_KIND else revoked)[b] += n
    return HourlyActivity(start, tuple(issued), tuple(revoked))


@dataclass(frozen=True)
class WitnessAge:
    member_id: str
    name: str
    cosigned: bool
    age_s: int | None  # None: no cosignature on the latest checkpoint


@dataclass(frozen=True)
class RegionFreshness:
    """One region's log as the console sees it: how old its newest cosignature is."""

    region: str
    own: bool
    size: int | None
    quorum_met: bool
    age_s: int | None  # age of the newest cosignature; None: none, or unreachable
    witnesses: tuple[WitnessAge, ...]
    error: str | None
    alarm: LedgerAlarm | None


def freshness(regions: list[RegionLedger], own_region: str, now: int) -> list[RegionFreshness]:
    out = []
    for r in regions:
        ages = tuple(
            WitnessAge(
                w.member_id,
                w.name,
                w.cosigned,
                None if w.timestamp is None else max(0, now - w.timestamp),
            )
            for w in r.witnesses
        )
        known = [a.age_s for a in ages if a.age_s is not None]
        out.append(
            RegionFreshness(
                r.region,
                r.region == own_region,
                r.size,
                r.quorum_met,
                min(known) if known else None,
                ages,
                r.error,
                r.alarm,
            )
        )
    # The region's own log first, then the peers.
    return sorted(out, key=lambda f: (not f.own, f.region))


@dataclass(frozen=True)
class Alarm:
    origin: str
    kind: str
    size: int
    detected_at: int


@dataclass(frozen=True)
class Alarms:
    items: tuple[Alarm, ...]
    total: int
    error: str | None = None  # the node could not be asked


def fetch_alarms(ledger_url: str | None, timeout_s: float = ALARMS_TIMEOUT_S) -> Alarms:
    """The newest evidence records the region's node holds (its witness's alarms)."""
    if not ledger_url:
        return Alarms((), 0, "no ledger_url configured")
    url = ledger_url.rstrip("/") + "/v1/alarms"
    try:
        r = requests.get(url, timeout=timeout_s, headers=outgoing_headers())
    except requests.RequestException as e:
        return Alarms((), 0, f"cannot reach {url}: {type(e).__name__}")
    if r.status_code == 404:
        return Alarms((), 0)  # a node outside joint operation keeps no evidence
    if r.status_code != 200 or len(r.content) > MAX_ALARMS_BYTES:
        return Alarms((), 0, f"expected 200 from {url}, found {r.status_code}")
    try:
        doc = r.json()
        items = [
            Alarm(str(a["origin"]), str(a["kind"]), int(a["size"]), int(a["detected_at"]))
            for a in doc["alarms"]
        ]
    except (ValueError, KeyError, TypeError):
        return Alarms((), 0, f"{url} answered something other than an alarm list")
    items.sort(key=lambda a: a.detected_at, reverse=True)
    return Alarms(tuple(items[:MAX_ALARMS_SHOWN]), len(items))
