"""What the console shows of the ledgers: each region's latest checkpoint, which
witnesses cosigned it, whether the consortium's quorum is met, and fork alarms.

The I/O edge is `CheckpointFetcher` (HTTP GET /checkpoint of a node, C2SP
tlog-tiles); `HttpFetcher` is the real one, tests may hand in a dict-backed fake. The
logic (`assess`) is pure: checkpoint bytes + consortium member + what was seen before
-> `RegionLedger`. A checkpoint whose log signature fails, or a second root for a size
already seen, or a smaller tree than before, raises an alarm instead of being shown
as healthy (C2SP tlog-witness: a log never signs two trees of one size).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import requests

from ledger.checkpoint import CosignatureVerifier, open_checkpoint
from ledger.consortium import Consortium, Member
from ledger.errors import LedgerError
from ledger.note import NoteVerifier

FETCH_TIMEOUT_S = 3.0  # seconds per checkpoint fetch: the page must stay fast
CACHE_TTL_S = 1.0  # seconds a fetched view is reused across requests
MAX_CHECKPOINT_BYTES = 64 * 1024  # bytes; a checkpoint with cosignatures is < 2 KiB


class CheckpointFetcher(Protocol):
    def fetch(self, url: str) -> bytes: ...


class HttpFetcher:
    def fetch(self, url: str) -> bytes:
        r = requests.get(url.rstrip("/") + "/checkpoint", timeout=FETCH_TIMEOUT_S)
        if r.status_code != 200:
            raise LedgerError(f"expected 200 from {url}/checkpoint, found {r.status_code}")
        if len(r.content) > MAX_CHECKPOINT_BYTES:
            raise LedgerError(f"checkpoint larger than {MAX_CHECKPOINT_BYTES} bytes")
        return r.content


@dataclass(frozen=True)
class WitnessMark:
    member_id: str
    name: str
    cosigned: bool
    timestamp: int | None


@dataclass(frozen=True)
class RegionLedger:
    region: str
    origin: str
    url: str
    size: int | None = None
    root_hex: str = ""
    witnesses: tuple[WitnessMark, ...] = ()
    quorum_met: bool = False
    quorum: str = ""
    error: str | None = None
    alarm: str | None = None

    @property
    def healthy(self) -> bool:
        return self.error is None and self.alarm is None and self.quorum_met


def assess(
    data: bytes, member: Member, consortium: Consortium, seen: dict[str, tuple[int, str]]
) -> RegionLedger:
    """Open one region's checkpoint and mark its cosignatures; update `seen`."""
    assert member.log is not None and member.log_origin is not None
    witnesses = [CosignatureVerifier.from_vkey(m.witness.text) for m in consortium.members]
    opened = open_checkpoint(data, NoteVerifier.from_vkey(member.log.text), witnesses)
    cp = opened.checkpoint
    if cp.origin != member.log_origin:
        raise LedgerError(f"expected origin {member.log_origin}, found {cp.origin}")
    marks = []
    signed_ids = []
    for m in consortium.members:
        ts = opened.cosignatures.get(m.witness.name)
        marks.append(WitnessMark(m.id, m.witness.name, ts is not None, ts))
        if ts is not None:
            signed_ids.append(m.id)
    root = cp.root_hash.hex()
    alarm = None
    before = seen.get(member.id)
    if before is not None:
        if before[0] == cp.size and before[1] != root:
            alarm = f"fork: two different roots for tree size {cp.size}"
        elif cp.size < before[0]:
            alarm = f"rollback: tree size went from {before[0]} down to {cp.size}"
    if alarm is None:
        seen[member.id] = (cp.size, root)
    return RegionLedger(
        region=member.id,
        origin=cp.origin,
        url=member.node_url,
        size=cp.size,
        root_hex=root,
        witnesses=tuple(marks),
        quorum_met=consortium.policy.satisfied_by(signed_ids),
        quorum=consortium.policy.describe(),
        alarm=alarm,
    )


@dataclass
class LedgerView:
    """Cached, thread-safe view of every region's log for the console."""

    consortium: Consortium | None
    own_region: str
    own_url: str | None
    fetcher: CheckpointFetcher = field(default_factory=HttpFetcher)
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, tuple[int, str]] = field(default_factory=dict)
    _cache: tuple[float, list[RegionLedger]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def regions(self) -> list[RegionLedger]:
        with self._lock:
            now = self.clock()
            if self._cache is not None and now - self._cache[0] < CACHE_TTL_S:
                return self._cache[1]
            out = self._fetch_all()
            self._cache = (now, out)
            return out

    def invalidate(self) -> None:
        with self._lock:
            self._cache = None

    def region(self, region: str) -> RegionLedger | None:
        return next((r for r in self.regions() if r.region == region), None)

    def _fetch_all(self) -> list[RegionLedger]:
        if self.consortium is None:
            return [
                RegionLedger(
                    self.own_region,
                    "",
                    self.own_url or "",
                    error="no consortium file configured: cosignatures cannot be checked",
                )
            ]
        out = []
        for m in self.consortium.members:
            if not m.runs_log:
                continue
            url = self.own_url if (m.id == self.own_region and self.own_url) else m.node_url
            try:
                out.append(assess(self.fetcher.fetch(url), m, self.consortium, self._seen))
            except (LedgerError, requests.RequestException, ValueError) as e:
                out.append(
                    RegionLedger(
                        m.id,
                        m.log_origin or "",
                        url,
                        error=f"{type(e).__name__}: {e}"[:300],
                        alarm="bad checkpoint signature" if "signature" in str(e) else None,
                    )
                )
        return out
