"""Keeping the station's ledger view fresh: sync on demand and in the background.

What it does: `LedgerSyncer` wraps `ledger.clients.sync.SyncClient` for the station. One sync
at a time (a lock); each run opens its own client and connection, so it can run in the
scan thread (a code signed by an unseen key) or in the `BackgroundSync` thread. Failed
attempts make the station "offline" and are not retried on every scan: a miss within
`MISS_RETRY_S` of a failed attempt returns False at once, so an offline station answers
"station needs sync" without waiting on the network for every code.

What it does not do: verify checkpoints or entries itself (the sync client does), or
decide anything about a presentation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.observability import SecurityEvent, security_event
from ledger.clients.sync import (
    ForkDetectedError,
    ProgressCallback,
    RegionStatus,
    SourcePace,
    SyncClient,
    SyncedTrustState,
    SyncReport,
)
from ledger.log.consortium import Consortium
from ledger.log.errors import LedgerError

log = logging.getLogger(__name__)

MISS_RETRY_S = 15.0  # seconds after a failed sync before a scan may trigger another
# Scan-prompted syncs per region: after one that brought nothing new, none for this
# long (a stream of forged codes naming unknown keys or future times must not turn the
# station into a sync loop); after one that did bring new entries, none for the short
# interval (a busy region's fresh credentials still get their sync promptly). A code
# signed by a registered key and only newer than the view (vouched: nobody without an
# issuer key can make one) prompts a sync after ON_DEMAND_VOUCHED_S at most, so a
# freshly issued credential is admitted within seconds.
ON_DEMAND_INTERVAL_S = 30.0  # seconds
ON_DEMAND_AFTER_UPDATE_S = 2.0  # seconds
ON_DEMAND_VOUCHED_S = 1.0  # seconds


@dataclass(frozen=True)
class SyncOutcome:
    ok: bool
    report: SyncReport | None
    error: str | None
    at: float


class LedgerSyncer:
    """The station's Syncer over the real sync client."""

    def __init__(
        self,
        consortium: Consortium,
        state_db: str | Path,
        client_factory: Callable[[Consortium, Path], Any] | None = None,
        clock: Callable[[], float] = time.time,
        *,
        max_age_s: int | None = None,
        insecure_accept_self_cosigned_logs: bool = False,
        pace: SourcePace | None = None,
    ) -> None:
        self.consortium = consortium
        self.state_db = Path(state_db)
        # The station's max sync age also bounds what a sync accepts: a view whose
        # quorum cosigned it longer ago is refused (ledger.clients.sync, rollback by replay).
        self._factory = client_factory or (
            lambda c, p: SyncClient(
                c, p, max_age_s=max_age_s,
                insecure_accept_self_cosigned_logs=insecure_accept_self_cosigned_logs,
                pace=pace,
            )
        )  # fmt: skip
        self._clock = clock
        self._lock = threading.Lock()
        self.last: SyncOutcome | None = None
        self.fork_alarm: str | None = None
        self.on_demand_interval_s = ON_DEMAND_INTERVAL_S
        self.on_demand_after_update_s = ON_DEMAND_AFTER_UPDATE_S
        self._on_demand_at: dict[str, tuple[float, bool]] = {}  # region -> (at, updated)

    @property
    def online(self) -> bool | None:
        return None if self.last is None else self.last.ok

    def sync(
        self, region: str | None = None, progress: ProgressCallback | None = None
    ) -> SyncOutcome:
        """Run one sync; never raises for network or ledger trouble (reports it)."""
        with self._lock:
            try:
                client = self._factory(self.consortium, self.state_db)
            except (LedgerError, OSError) as e:  # e.g. an insecure quorum policy
                self.last = SyncOutcome(False, None, str(e), self._clock())
                return self.last
            try:
                report = client.sync(region, progress=progress)
                ok = any(r.status is not RegionStatus.FAILED for r in report.regions)
                forks = [f"{r.region}: {r.fork}" for r in report.regions if r.fork]
                if forks:
                    # One region's split view: its old state is kept, the alarm is
                    # stored with both notes (SyncedTrustState.fork_alarms), the other
                    # regions synced as usual.
                    self.fork_alarm = "; ".join(forks)
                    log.error("ledger fork detected: %s", self.fork_alarm)
                errors = [e for r in report.regions for e in r.errors]
                outcome = SyncOutcome(
                    ok, report, None if ok else "; ".join(errors)[:500], self._clock()
                )
            except ForkDetectedError as e:
                # Evidence of a split view: keep the old state, raise the alarm loudly.
                if self.fork_alarm != str(e):  # one log line per distinct alarm
                    security_event(log, SecurityEvent.STATION_ALARM, detail=str(e)[:300])
                self.fork_alarm = str(e)
                outcome = SyncOutcome(False, None, f"fork detected: {e}", self._clock())
            except (LedgerError, OSError) as e:
                outcome = SyncOutcome(False, None, str(e), self._clock())
            finally:
                client.close()
            self.last = outcome
            return outcome

    def sync_now(self, region: str | None, vouched: bool = False) -> bool:
        """Syncer protocol: a sync prompted by a scan, skipped while known offline and
        rate-limited per region (ON_DEMAND_*)."""
        last = self.last
        now = self._clock()
        if last is not None and not last.ok and now - last.at < MISS_RETRY_S:
            return False
        key = region or "*"
        prev = self._on_demand_at.get(key)
        if prev is not None:
            at, updated = prev
            if vouched:
                wait = ON_DEMAND_VOUCHED_S
            elif updated:
                wait = self.on_demand_after_update_s
            else:
                wait = self.on_demand_interval_s
            if 0 <= now - at < wait:
                log.info("scan-prompted sync of %s skipped: one ran %.0f s ago", key, now - at)
                return False
        outcome = self.sync(region)
        updated = outcome.report is not None and any(
            r.status is RegionStatus.UPDATED for r in outcome.report.regions
        )
        self._on_demand_at[key] = (now, updated)
        return outcome.ok


def sync_ages(
    state_db: str | Path, now: float, regions: tuple[str, ...]
) -> Mapping[str, int | None]:
    """Seconds since each region's synced checkpoint (None: never synced).

    Opens its own read connection: safe to call from the kiosk's request threads.
    """
    if not Path(state_db).exists():
        return dict.fromkeys(regions)
    state = SyncedTrustState(state_db)
    try:
        out: dict[str, int | None] = {}
        for r in regions:
            at = state.synced_at(r)
            out[r] = None if at is None else max(0, int(now - at))
        return out
    finally:
        state.close()


def fork_alarms(state_db: str | Path) -> list[str]:
    """One line per split view this station has kept evidence of (oldest first)."""
    if not Path(state_db).exists():
        return []
    state = SyncedTrustState(state_db)
    try:
        return [
            f"FORK in {a.region}'s log at size {a.size}: two quorum-cosigned roots "
            f"(detected at {a.detected_at}; both checkpoints kept in the station state)"
            for a in state.fork_alarms()
        ]
    finally:
        state.close()


class BackgroundSync:
    """Syncs every `interval_s` seconds in a daemon thread until stopped."""

    def __init__(self, syncer: LedgerSyncer, interval_s: float) -> None:
        self.syncer = syncer
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="background-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            outcome = self.syncer.sync(None)
            if not outcome.ok:
                log.warning("background sync failed (station keeps its state): %s", outcome.error)
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
