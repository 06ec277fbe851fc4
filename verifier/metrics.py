"""A verifier station's Prometheus metrics and readiness checks.

What it does: `StationMetrics` is a `Station` listener (scans counted by decision and
reason code, frame decode and verification latency) and a scrape-time collector (age
of the station's synced view per region against its policy limit, frames dropped).
`readiness_checks` passes when every region's view is within the policy's
`max_sync_age_s` (docs/verifier.md: a station says how old its view is). Labels are
decisions, reason codes and region ids: never the masked name, document hint or any
other part of a scanned code.

What it does not: decide anything, or serve HTTP (common.observability.OpsServer does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from common.observability import NotReadyError, ReadinessCheck
from verifier.station import ScanEvent, Station

# Seconds: a decode of a 720p frame takes a few to a few tens of milliseconds.
DECODE_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0)
VERIFY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
NO_REASON = "none"  # an ADMIT carries no reason

SyncAges = Callable[[], Mapping[str, int | None]]


@dataclass(eq=False)  # registries key collectors by identity
class _SyncCollector(Collector):
    sync_ages: SyncAges
    max_sync_age_s: int
    station: Station | None = None
    alarm: Callable[[], str | None] = lambda: None

    def collect(self) -> Iterator[Metric]:
        fork = GaugeMetricFamily(
            "healthbridge_station_fork_alarm",
            "1 while the station's sync holds evidence of a split view (a ledger fork).",
        )
        fork.add_metric([], 0 if self.alarm() is None else 1)
        yield fork
        age = GaugeMetricFamily(
            "healthbridge_station_sync_age_seconds",
            "Seconds since the station's synced checkpoint of each region.",
            labels=["region"],
        )
        never = GaugeMetricFamily(
            "healthbridge_station_never_synced",
            "1 for a region the station has no synced view of.",
            labels=["region"],
        )
        for region, a in sorted(self.sync_ages().items()):
            never.add_metric([region], 1 if a is None else 0)
            if a is not None:
                age.add_metric([region], a)
        yield age
        yield never
        limit = GaugeMetricFamily(
            "healthbridge_station_max_sync_age_seconds",
            "The station policy's limit on the age of a region's view.",
        )
        limit.add_metric([], self.max_sync_age_s)
        yield limit
        if self.station is not None:
            skipped = CounterMetricFamily(
                "healthbridge_station_frames_skipped",
                "Frames dropped because they were not images the decoder could read.",
            )
            skipped.add_metric([], self.station.skipped_frames)
            yield skipped


@dataclass
class StationMetrics:
    registry: CollectorRegistry
    scans: Counter
    decode_seconds: Histogram
    verify_seconds: Histogram
    checks: list[ReadinessCheck] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        sync_ages: SyncAges,
        max_sync_age_s: int,
        station: Station | None = None,
        alarm: Callable[[], str | None] = lambda: None,
    ) -> StationMetrics:
        registry = CollectorRegistry()
        registry.register(_SyncCollector(sync_ages, max_sync_age_s, station, alarm))
        scans = Counter(
            "healthbridge_station_scans",
            "Codes verified, by decision and reason code (one count per reason).",
            ["decision", "reason"],
            registry=registry,
        )
        decode = Histogram(
            "healthbridge_station_frame_decode_seconds",
            "Time to find and decode the QR codes of one frame that held a code.",
            registry=registry,
            buckets=DECODE_BUCKETS,
        )
        verify = Histogram(
            "healthbridge_station_verify_seconds",
            "Time to verify one decoded code (with its sync when one was needed).",
            registry=registry,
            buckets=VERIFY_BUCKETS,
        )
        return cls(registry, scans, decode, verify, readiness_checks(sync_ages, max_sync_age_s))

    def attach(self, station: Station) -> None:
        station.listeners.append(self.on_event)

    def on_event(self, event: ScanEvent) -> None:
        v = event.verdict
        decision = v.decision.value
        for reason in v.reasons or ():
            self.scans.labels(decision, reason.value).inc()
        if not v.reasons:
            self.scans.labels(decision, NO_REASON).inc()
        self.decode_seconds.observe(event.decode_ms / 1000.0)
        self.verify_seconds.observe(event.verify_ms / 1000.0)


def readiness_checks(sync_ages: SyncAges, max_sync_age_s: int) -> list[ReadinessCheck]:
    def views_within_policy() -> None:
        ages = sync_ages()
        late = sorted(r for r, a in ages.items() if a is None or a > max_sync_age_s)
        if late:
            raise NotReadyError(
                f"expected every region's view within {max_sync_age_s} s, "
                f"found {', '.join(late)} older or never synced"
            )

    return [ReadinessCheck("sync_views", views_within_policy)]
