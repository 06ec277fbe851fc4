"""The issuer's one view of the ledgers: each region's latest checkpoint and its
cosigners, for entry states (`AdminService.entry_status`) and the console's ledger page.

`assess_checkpoint` is pure: the checkpoint bytes a node served, the region's consortium
member and the consortium -> `CheckpointView` (tree size, which members' witnesses
cosigned, whether the consortium policy is met). It verifies the log's signature and
every cosignature by a known witness (C2SP tlog-checkpoint, tlog-cosignature v1) and
raises `LedgerUnavailableError` on anything else. `ConsortiumCheckpoints` is the I/O
edge: it fetches `GET /checkpoint` (C2SP tlog-tiles) from the region's node through a
`CheckpointFetcher` and caches the view for `CACHE_TTL_S`. It decides nothing about
outbox rows: `issuer.admin.services.AdminService.entry_status` applies the view to an entry.
`ConsortiumCheckpoints.regions()` assesses every member's log the same way for the
ledger page (`assess_region`: each witness present or missing with its time, and an
alarm on a second root for a tree size already seen or a shrinking tree, C2SP
tlog-witness: a log never signs two trees of one size).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import requests

from issuer.context import IssuerContext
from issuer.errors import ConfigError, LedgerUnavailableError
from ledger.clients.reader import (
    MAX_CHECKPOINT_BYTES,
    HttpLogReader,
    LogStatusError,
    LogTooLargeError,
    LogUnreachableError,
)
from ledger.log.checkpoint import Checkpoint, CosignatureVerifier, open_checkpoint
from ledger.log.consortium import Consortium, Member
from ledger.log.errors import LedgerError
from ledger.log.note import NoteVerifier

FETCH_TIMEOUT_S = 3.0  # seconds per checkpoint fetch: an admin page waits on it
CACHE_TTL_S = 1.0  # seconds one fetched view is reused across requests


class CheckpointFetcher(Protocol):
    """Returns the signed checkpoint (with cosignature lines) a node serves."""

    def fetch(self, base_url: str) -> bytes: ...


class HttpCheckpointFetcher:
    """`CheckpointFetcher` through the ledger's one bounded reader (ledger.clients.reader)."""

    def __init__(self, timeout_s: float = FETCH_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def fetch(self, base_url: str) -> bytes:
        # A session per fetch, as requests.get does: admin requests run on many threads.
        with requests.Session() as session:
            return self._fetch(HttpLogReader(base_url, session, timeout=self.timeout_s))

    def _fetch(self, reader: HttpLogReader) -> bytes:
        url = f"{reader.prefix}/checkpoint"
        try:
            return reader.checkpoint()
        except LogUnreachableError as e:
            raise LedgerUnavailableError(f"cannot reach {url}: {e}") from e
        except LogStatusError as e:
            raise LedgerUnavailableError(f"expected 200 from {url}, found {e.status}") from e
        except LogTooLargeError as e:
            raise LedgerUnavailableError(
                f"expected a checkpoint of at most {MAX_CHECKPOINT_BYTES} bytes from {url}"
            ) from e


@dataclass(frozen=True)
class CheckpointView:
    """What the ledger says now: tree size and whether its cosignatures meet the quorum."""

    size: int
    cosigned: bool
    witnesses: tuple[str, ...] = ()  # member ids whose witness cosigned this checkpoint
    quorum: str = ""  # the consortium policy, described for people


@dataclass(frozen=True)
class WitnessMark:
    """One consortium witness on one checkpoint: cosigned or not, and when."""

    member_id: str
    name: str
    cosigned: bool
    timestamp: int | None


class AlarmKind(StrEnum):
    FORK = "fork"  # a second root for a tree size already seen
    ROLLBACK = "rollback"  # a smaller tree than one already seen
    BAD_SIGNATURE = "bad_signature"  # the checkpoint's signatures were refused


@dataclass(frozen=True)
class LedgerAlarm:
    """What the console noticed about one region's log; pages word it in the admin's
    language from `kind` and the sizes, `str()` is the English the admin API returns."""

    kind: AlarmKind
    size: int | None = None  # the tree size now served
    seen_size: int | None = None  # the tree size seen before (a rollback's)

    def __str__(self) -> str:
        if self.kind is AlarmKind.FORK:
            return f"fork: two different roots for tree size {self.size}"
        if self.kind is AlarmKind.ROLLBACK:
            return f"rollback: tree size went from {self.seen_size} down to {self.size}"
        return "bad checkpoint signature"


@dataclass(frozen=True)
class RegionLedger:
    """What the ledger page shows of one region's log."""

    region: str
    origin: str
    url: str
    size: int | None = None
    root_hex: str = ""
    witnesses: tuple[WitnessMark, ...] = ()
    quorum_met: bool = False
    quorum: str = ""
    error: str | None = None
    alarm: LedgerAlarm | None = None

    @property
    def healthy(self) -> bool:
        return self.error is None and self.alarm is None and self.quorum_met


def assess_checkpoint(
    data: bytes, member: Member, consortium: Consortium, origin: str | None = None
) -> CheckpointView:
    """Open `member`'s checkpoint and count the consortium witnesses that cosigned it.

    A bad log signature, a bad cosignature by a known witness (signed-note: a note with
    an invalid known signature is rejected) or a foreign origin raises; signatures by
    unknown keys are ignored (C2SP signed-note)."""
    _cp, view, _marks = _assess(data, member, consortium, origin)
    return view


def shard_origin_now(member: Member, now: float) -> tuple[str | None, int | None]:
    """The log origin a console shows for `member` at `now`, and its shard number: the
    log itself, or the open temporal shard of a sharded log (ledger.log.shards)."""
    if member.shards is None:
        return member.log_origin, None
    sch = member.shards.schedule
    shard = sch.shard_for(max(int(now), sch.epoch))
    return shard.origin, shard.number


def shard_url(url: str, shard: int | None) -> str:
    """Where the node serves the log (`<node>/<k>` for shard k)."""
    return url if shard is None else f"{url.rstrip('/')}/{shard}"


def assess_region(
    data: bytes, member: Member, consortium: Consortium, seen: dict[str, tuple[int, str]]
) -> RegionLedger:
    """`assess_checkpoint` plus each witness's mark and fork / rollback alarms against
    what was `seen` before (updated when no alarm is raised)."""
    origin, _shard = shard_origin_now(member, time.time())
    cp, view, marks = _assess(data, member, consortium, origin)
    root = cp.root_hash.hex()
    alarm = None
    before = seen.get(member.id)
    if before is not None:
        if before[0] == cp.size and before[1] != root:
            alarm = LedgerAlarm(AlarmKind.FORK, cp.size)
        elif cp.size < before[0]:
            alarm = LedgerAlarm(AlarmKind.ROLLBACK, cp.size, before[0])
    if alarm is None:
        seen[member.id] = (cp.size, root)
    return RegionLedger(
        region=member.id,
        origin=cp.origin,
        url=member.node_url,
        size=cp.size,
        root_hex=root,
        witnesses=marks,
        quorum_met=view.cosigned,
        quorum=view.quorum,
        alarm=alarm,
    )


def _assess(
    data: bytes, member: Member, consortium: Consortium, origin: str | None = None
) -> tuple[Checkpoint, CheckpointView, tuple[WitnessMark, ...]]:
    if member.log is None or member.log_origin is None:
        raise ConfigError(f"consortium member {member.id} runs no log")
    origin = origin or member.log_origin
    vkey = member.log_vkey_for(origin)
    if vkey is None:
        raise ConfigError(f"consortium member {member.id} runs no log {origin}")
    witnesses = [CosignatureVerifier.from_vkey(m.witness.text) for m in consortium.members]
    try:
        opened = open_checkpoint(data, NoteVerifier.from_vkey(vkey.text), witnesses)
    except (LedgerError, ValueError) as e:
        raise LedgerUnavailableError(f"{member.id} checkpoint refused: {e}") from e
    cp = opened.checkpoint
    if cp.origin != origin:
        raise LedgerUnavailableError(f"expected checkpoint origin {origin}, found {cp.origin}")
    marks = tuple(
        WitnessMark(m.id, m.witness.name, ts is not None, ts)
        for m in consortium.members
        for ts in (opened.cosignatures.get(m.witness.name),)
    )
    cosigners = tuple(mark.member_id for mark in marks if mark.cosigned)
    view = CheckpointView(
        size=cp.size,
        cosigned=consortium.policy.satisfied_by(cosigners),
        witnesses=cosigners,
        quorum=consortium.policy.describe(),
    )
    return cp, view, marks


@dataclass
class ConsortiumCheckpoints:
    """A `Callable[[], CheckpointView]` for one region, over HTTP, with a short cache."""

    consortium: Consortium
    region: str
    node_url: str | None = None  # the issuer's own ledger_url; else the consortium's
    fetcher: CheckpointFetcher = field(default_factory=HttpCheckpointFetcher)
    clock: Callable[[], float] = time.monotonic
    _cache: tuple[float, CheckpointView] | None = None
    _regions: tuple[float, list[RegionLedger]] | None = None
    _seen: dict[str, tuple[int, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_context(cls, ctx: IssuerContext) -> ConsortiumCheckpoints | None:
        """None when no consortium file is configured (cosignatures cannot be checked)."""
        path = ctx.config.consortium_path
        if path is None:
            return None
        try:
            consortium = Consortium.load(path)
        except (LedgerError, OSError, ValueError) as e:
            raise ConfigError(f"cannot load consortium file {path}: {e}") from e
        return cls(consortium, ctx.region, ctx.config.ledger_url)

    def __call__(self) -> CheckpointView:
        with self._lock:
            now = self.clock()
            if self._cache is not None and now - self._cache[0] < CACHE_TTL_S:
                return self._cache[1]
        member = self._member()
        origin, shard = shard_origin_now(member, time.time())
        url = shard_url(self.node_url or member.node_url, shard)
        view = assess_checkpoint(self.fetcher.fetch(url), member, self.consortium, origin)
        with self._lock:
            self._cache = (now, view)
        return view

    def _member(self) -> Member:
        try:
            return self.consortium.member(self.region)
        except LedgerError as e:
            raise ConfigError(f"region {self.region} is not in the consortium file") from e

    def for_shard(self, shard: int) -> Callable[[], CheckpointView]:
        """The view of one temporal shard of this region's log (an outbox row names the
        shard it was anchored in, issuer.sharding), uncached."""

        def view() -> CheckpointView:
            member = self._member()
            if member.shards is None:
                return self()
            origin = member.shards.schedule.shard(shard).origin
            url = shard_url(self.node_url or member.node_url, shard)
            return assess_checkpoint(self.fetcher.fetch(url), member, self.consortium, origin)

        return view

    def regions(self) -> list[RegionLedger]:
        """Every log-running member's latest checkpoint, assessed; a member that cannot
        be read is shown with its error (and an alarm when its signature is bad)."""
        with self._lock:
            now = self.clock()
            if self._regions is not None and now - self._regions[0] < CACHE_TTL_S:
                return self._regions[1]
            out = []
            for m in self.consortium.members:
                if not m.runs_log:
                    continue
                url = self.node_url if (m.id == self.region and self.node_url) else m.node_url
                url = shard_url(url, shard_origin_now(m, time.time())[1])
                try:
                    out.append(
                        assess_region(self.fetcher.fetch(url), m, self.consortium, self._seen)
                    )
                except (LedgerUnavailableError, ConfigError) as e:
                    bad_signature = "refused" in e.message
                    out.append(
                        RegionLedger(
                            m.id,
                            m.log_origin or "",
                            url,
                            error=e.message[:300],
                            alarm=LedgerAlarm(AlarmKind.BAD_SIGNATURE) if bad_signature else None,
                        )
                    )
            self._regions = (now, out)
            return out

    def invalidate(self) -> None:
        """Forget cached views (after an action, so the next page shows fresh state)."""
        with self._lock:
            self._cache = None
            self._regions = None
