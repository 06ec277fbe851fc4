"""The station's scan loop: frame -> QR bytes -> verdict -> log and display.

What it does: for each frame, decodes QR codes (`verifier.decode`), drops the ones
already reported a moment ago (`Deduper`: the same code held in front of the camera is
reported once, not 30 times a second), verifies each new one against the station's
trust state at the reference time (`credential.verify.verify_presentation`, pure), and
hands the resulting `ScanEvent` to the scan log and to any listener (the kiosk, the
headless JSON printer). When a verdict says the station lacks data (a key it has not
seen, revocation data too old) and a `Syncer` is online, it syncs once and verifies
again; offline it leaves the verdict as it is ("station needs sync").

What it does not do: capture (`verifier.frames`), render (`verifier.kiosk`) or talk to
the ledger itself (the `Syncer` does, in `verifier.syncing`). Time comes in through a
clock function so recorded video can be verified "as of" the time it was filmed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from credential.languages import N_
from credential.reasons import Reason
from credential.trust import TrustState
from credential.verdict import DEFAULT_POLICY, Decision, StationPolicy, Verdict, describe
from credential.verify import InMemoryReplayGuard, verify_presentation
from verifier.decode import DEFAULT_LIMITS, DecodedCode, DecodeLimits, decode_frame
from verifier.errors import DecodeInputError
from verifier.frames import Frame, FrameSource
from verifier.scanlog import ScanRecord

DEDUPE_SECONDS = 4.0  # seconds a code must be out of view before it is reported again
DEDUPE_CAPACITY = 256  # distinct codes remembered at once
SYNC_REASONS = frozenset(
    {Reason.STATION_NEEDS_SYNC, Reason.REVOCATION_UNKNOWN, Reason.NOT_YET_ANCHORED}
)
# Reasons reached after the holder-proof step: the replay guard already holds the proof.
PAST_PROOF_REASONS = frozenset({Reason.REVOCATION_UNKNOWN, Reason.NOT_YET_ANCHORED})

# (payload, reference time, use the replay guard) -> verdict
Verify = Callable[[bytes, float, bool], Verdict]


class Deduper:
    """Remembers recently seen payloads; `is_new` is True once per appearance.

    The window slides: every sighting refreshes it, so a code held still for a minute
    is reported once, and again only after it left the view for `window_s` seconds.
    """

    def __init__(self, window_s: float = DEDUPE_SECONDS, capacity: int = DEDUPE_CAPACITY) -> None:
        self.window_s = window_s
        self.capacity = capacity
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def is_new(self, data: bytes, now: float) -> bool:
        last = self._seen.pop(data, None)
        self._seen[data] = now
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return last is None or now - last > self.window_s or now < last


class RecordSink(Protocol):
    """Where scan records go: a `ScanLog` (written on the spot) or, on a live station,
    a `ScanLogWriter` (queued, written off the scan loop)."""

    def append(self, record: ScanRecord) -> None: ...

    def ref(self, digest_prefix: str | None) -> str | None: ...


class Syncer(Protocol):
    """Brings the station's trust state up to date; False when offline or failing."""

    def sync_now(self, region: str | None, vouched: bool = False) -> bool:
        """`vouched`: the code is signed by a registered key and only newer than the
        view (NOT_YET_ANCHORED), so nobody without an issuer key can prompt this sync
        and it may run sooner than one prompted by an unknown key or a future time."""
        ...


@dataclass(frozen=True)
class ScanEvent:
    """One reported scan: the verdict, where the code was, and what it cost."""

    at: float  # reference time the verdict was computed for (Unix seconds)
    verdict: Verdict
    code: DecodedCode
    frame_index: int
    decode_ms: float
    verify_ms: float
    synced: bool = False  # a sync ran because of this scan
    # This station's keyed reference of the credential (verifier.scanlog.scan_ref):
    # what the scan log and the headless output carry instead of any digest.
    scan_ref: str | None = None

    def to_json(self, include_holder: bool = False) -> dict[str, Any]:
        """A JSON-ready summary. Holder fields (masked name, document hint) only when
        asked for: the headless output may end up in logs."""
        v = self.verdict
        out: dict[str, Any] = {
            "at": round(self.at, 3),
            "decision": v.decision.value,
            "reasons": [r.value for r in v.reasons],
            "message": describe(v.reasons[0]) if v.reasons else "",
            "colour": v.colour.value if v.colour else None,
            "region": v.region,
            "scan_ref": self.scan_ref,
            "sync_age_s": v.sync_age_s,
            "decode_ms": round(self.decode_ms, 2),
            "verify_ms": round(self.verify_ms, 2),
        }
        if include_holder and v.display is not None:
            out["holder"] = {
                "masked_name": v.display.masked_name,
                "document_hint": v.display.document_hint,
                "expires_at": v.display.expires_at,
            }
        return out


def record_of(event: ScanEvent) -> ScanRecord:
    """The scan-log row for an event: no holder fields, the keyed reference only."""
    v = event.verdict
    return ScanRecord(
        scanned_at=event.at,
        decision=v.decision.value,
        reasons=tuple(r.value for r in v.reasons),
        region=v.region,
        scan_ref=event.scan_ref,
        sync_age_s=v.sync_age_s,
    )


def presentation_verifier(
    trust: Callable[[], TrustState],
    policy: StationPolicy = DEFAULT_POLICY,
    replay: Any = None,
) -> Verify:
    """A `Verify` over credential.verify with the station's policy and replay guard.

    `trust` is called per scan so a sync can swap in a newer state between scans.
    """
    guard = replay if replay is not None else InMemoryReplayGuard()

    def verify(data: bytes, now: float, use_guard: bool = True) -> Verdict:
        return verify_presentation(
            data, trust(), now, policy=policy, replay=guard if use_guard else None
        )

    return verify


def _wall_clock(_: Frame) -> float:
    return time.time()


@dataclass
class Station:
    """The scan loop's state: what to verify with, where to log, who to tell."""

    verify: Verify
    log: RecordSink | None = None
    syncer: Syncer | None = None
    clock: Callable[[Frame], float] = _wall_clock
    limits: DecodeLimits = DEFAULT_LIMITS
    deduper: Deduper = field(default_factory=Deduper)
    listeners: list[Callable[[ScanEvent], None]] = field(default_factory=list)
    frame_listeners: list[Callable[[Frame, list[DecodedCode]], None]] = field(default_factory=list)
    skipped_frames: int = 0  # frames that were not images the decoder could read
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _verify_with_sync(self, data: bytes, now: float) -> tuple[Verdict, bool]:
        verdict = self.verify(data, now, True)
        if self.syncer is None or not SYNC_REASONS.intersection(verdict.reasons):
            return verdict, False
        # The station lacks data for this code: one sync, then one more verification.
        vouched = Reason.NOT_YET_ANCHORED in verdict.reasons
        if not self.syncer.sync_now(verdict.region, vouched):
            return verdict, False
        # A verdict of REVOCATION_UNKNOWN or NOT_YET_ANCHORED got past the holder-proof
        # step, so the replay guard already recorded this proof: checking it again would
        # call this very scan a replay. STATION_NEEDS_SYNC stopped before that step:
        # guard it now.
        use_guard = not PAST_PROOF_REASONS.intersection(verdict.reasons)
        return self.verify(data, now, use_guard), True

    def process(self, frame: Frame) -> list[ScanEvent]:
        """Decode, dedupe, verify, log and announce; returns the new events."""
        started = time.perf_counter()
        try:
            codes = decode_frame(frame.image, self.limits)
        except DecodeInputError:
            # A source handed over something that is not an 8-bit image (a driver
            # glitch, an odd pixel format): drop that frame, keep the station running.
            self.skipped_frames += 1
            return []
        decode_ms = (time.perf_counter() - started) * 1000.0
        for fl in self.frame_listeners:
            fl(frame, codes)
        events: list[ScanEvent] = []
        now = self.clock(frame)
        for code in codes:
            if not self.deduper.is_new(code.data, now):
                continue
            t0 = time.perf_counter()
            with self._lock:
                verdict, synced = self._verify_with_sync(code.data, now)
            verify_ms = (time.perf_counter() - t0) * 1000.0
            ref = self.log.ref(verdict.digest_prefix) if self.log is not None else None
            event = ScanEvent(now, verdict, code, frame.index, decode_ms, verify_ms, synced, ref)
            if self.log is not None:
                self.log.append(record_of(event))
            for listener in self.listeners:
                listener(event)
            events.append(event)
        return events

    def run(self, source: FrameSource | Iterable[Frame]) -> Iterator[ScanEvent]:
        """Process every frame of `source`, yielding events as they happen."""
        for frame in source:
            yield from self.process(frame)


_LABELS = {
    Decision.ADMIT: N_("ADMIT"),
    Decision.DENY: N_("DENY"),
    Decision.MANUAL_CHECK: N_("CHECK"),
}


def decision_label(decision: Decision) -> str:
    """The one word staff read on the verdict panel (English; the kiosk translates it)."""
    return _LABELS[decision]
