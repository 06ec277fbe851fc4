"""Temporal shards of a region's log, in the manner of Certificate Transparency logs:
the pure schedule that names a shard and says which shard an entry belongs to, when a
shard is frozen and when it may be dropped. No I/O, no clock: times are passed in.

A region's log is a sequence of shards, each a complete C2SP tlog of its own (own
origin, own checkpoints, own tiles). Shard k covers the credentials whose expiry time
`exp` falls in [epoch + k * period, epoch + (k + 1) * period), like a CT shard covering
certificates by NotAfter. A shard is *open* until its period ends, then *frozen* (no
entry can belong to it any more: every credential it anchors expires inside it), and
*droppable* once every credential it anchors has expired and the grace for late
verification (clock skew) has passed: nothing a station verifies can need it.

`ShardPlan` adds what the consortium file says about a sharded member (the schedule,
the verifiers' grace and the longest validity a credential may have) and answers which
shards are *tracked* at a time: every shard not yet droppable, up to the furthest one
a credential issued now can expire in. Nodes run those, witnesses cosign them, mirrors
and stations follow them. `check_leaf` is the shard's own ledger rule (an anchor's
expiry inside the shard's period; no leaf logged after the shard froze), run by the
node before it sequences and by every validating mirror before it cosigns. The frozen
marker is a checkpoint extension line (C2SP tlog-checkpoint: lines after the root hash)
with a parse/render pair. Routing, storage and HTTP live in ledger.node.sharding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from ledger.log.entries import CredentialAnchored, TimestampedEntry, decode_entry
from ledger.log.errors import LedgerError

MIN_PERIOD_S = 3_600  # seconds: shorter shards would multiply checkpoints for no gain
MAX_PERIOD_S = 366 * 86_400  # seconds: CT logs shard by year at most
SHARD_SUFFIX_RE = re.compile(r"^[0-9]{1,12}$")
DEFAULT_GRACE_S = 300  # seconds; the verifiers' clock-skew leeway (credential.verify)
MAX_GRACE_S = 7 * 86_400  # seconds
# A station drops a shard's state (its revocations) once the grace after its end has
# passed, while it still admits a credential until `exp` plus the verifiers' clock-skew
# leeway (credential.verify.CLOCK_SKEW_LEEWAY_S, 60 s): a shorter grace would forget a
# revocation while the revoked credential still passes. Never below that leeway.
MIN_GRACE_S = 60  # seconds
MAX_VALIDITY_LIMIT_S = 366 * 86_400  # seconds; longest credential validity a plan allows
MAX_EPOCH = 7_258_118_400  # Unix seconds (2200-01-01): shard ends stay far inside int64
# Shards a plan may track at once (the node, every witness and every station follow each
# as a log of its own): a plan whose grace and longest validity span more periods than
# this is refused when the consortium file is read, not discovered as a station that
# syncs thousands of logs. TRACKING_MARGIN_S covers the widest clock margin any party
# adds (ledger.joint.witness.SHARD_WITNESS_MARGIN_S on either side).
MAX_TRACKED_SHARDS = 512  # shards
TRACKING_MARGIN_S = 600  # seconds
# Seconds after a shard's end within which a leaf may still carry a timestamp: the batch
# sealed at the instant of the end is sequenced a moment later.
FREEZE_LEEWAY_S = 60
# The frozen marker: `healthbridge/frozen <shard number> <end, Unix seconds>`.
FROZEN_EXTENSION_PREFIX = "healthbridge/frozen "
FROZEN_LINE_RE = re.compile(r"^healthbridge/frozen (0|[1-9][0-9]{0,11}) (0|[1-9][0-9]{0,18})$")
WRONG_SHARD_RULE = "wrong_shard"
SHARD_FROZEN_RULE = "shard_frozen"


class ShardError(ValueError):
    """A schedule or a shard name that is not valid."""


class ShardRuleError(LedgerError):
    """A leaf that does not belong in the shard it was logged in; `rule` names why."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


class ShardState(StrEnum):
    FUTURE = "future"  # its period has not begun; entries may already belong to it
    OPEN = "open"
    FROZEN = "frozen"
    DROPPABLE = "droppable"


@dataclass(frozen=True)
class Shard:
    """One shard: its number, its origin and the expiry interval it covers."""

    number: int
    origin: str
    start: int  # first covered expiry time, Unix seconds (inclusive)
    end: int  # end of the covered expiries, Unix seconds (exclusive)


@dataclass(frozen=True)
class ShardSchedule:
    """A region's shard layout: base origin, period and epoch (all Unix seconds)."""

    base_origin: str
    period_s: int
    epoch: int = 0

    def __post_init__(self) -> None:
        if not self.base_origin or any(c.isspace() for c in self.base_origin):
            raise ShardError(
                f"expected a base origin without whitespace, found {self.base_origin!r}"
            )
        if not MIN_PERIOD_S <= self.period_s <= MAX_PERIOD_S:
            raise ShardError(
                f"expected a period of {MIN_PERIOD_S}-{MAX_PERIOD_S} s, found {self.period_s}"
            )
        if not 0 <= self.epoch <= MAX_EPOCH:
            raise ShardError(f"expected an epoch of 0-{MAX_EPOCH} (Unix s), found {self.epoch}")

    def shard(self, number: int) -> Shard:
        if number < 0:
            raise ShardError(f"expected a non-negative shard number, found {number}")
        start = self.epoch + number * self.period_s
        return Shard(number, f"{self.base_origin}/{number}", start, start + self.period_s)

    def shard_for(self, expires_at: int) -> Shard:
        """The shard an entry about a credential expiring at `expires_at` belongs to."""
        if expires_at < self.epoch:
            raise ShardError(f"expiry {expires_at} precedes the schedule's epoch {self.epoch}")
        return self.shard((expires_at - self.epoch) // self.period_s)

    def parse_origin(self, origin: str) -> Shard:
        """The shard named by `origin` (render/parse pair with `shard(n).origin`)."""
        prefix = self.base_origin + "/"
        suffix = origin[len(prefix) :] if origin.startswith(prefix) else ""
        if not SHARD_SUFFIX_RE.fullmatch(suffix) or (len(suffix) > 1 and suffix[0] == "0"):
            raise ShardError(f"expected {prefix}<shard number>, found {origin!r}")
        return self.shard(int(suffix))

    def state(self, shard: Shard, now: int, grace_s: int) -> ShardState:
        """FUTURE before its period, OPEN during it, FROZEN after it, DROPPABLE once
        every credential it covers has expired by more than `grace_s` (the verifiers'
        clock-skew leeway)."""
        if now >= shard.end + grace_s:
            return ShardState.DROPPABLE
        if now >= shard.end:
            return ShardState.FROZEN
        if now >= shard.start:
            return ShardState.OPEN
        return ShardState.FUTURE

    def live(self, now: int, max_validity_s: int) -> list[Shard]:
        """The shards a new credential issued at `now` and valid at most
        `max_validity_s` can fall into, and the open one: what an issuer must be able
        to anchor into and a station must follow at `now`."""
        first = self.shard_for(max(now, self.epoch)).number
        last = self.shard_for(max(now, self.epoch) + max_validity_s).number
        return [self.shard(n) for n in range(first, last + 1)]


@dataclass(frozen=True)
class ShardPlan:
    """A sharded member's plan (consortium `[members.shards]`): the schedule, the grace
    after which a frozen shard is droppable and the longest credential validity."""

    schedule: ShardSchedule
    grace_s: int = DEFAULT_GRACE_S
    max_validity_s: int = 30 * 86_400

    def __post_init__(self) -> None:
        if not MIN_GRACE_S <= self.grace_s <= MAX_GRACE_S:
            raise ShardError(
                f"expected a grace of {MIN_GRACE_S}-{MAX_GRACE_S} s, found {self.grace_s}"
            )
        if not 0 < self.max_validity_s <= MAX_VALIDITY_LIMIT_S:
            raise ShardError(
                f"expected a max validity of 1-{MAX_VALIDITY_LIMIT_S} s, "
                f"found {self.max_validity_s}"
            )
        worst = self.max_tracked(TRACKING_MARGIN_S)
        if worst > MAX_TRACKED_SHARDS:
            raise ShardError(
                f"expected grace_s + max_validity_s to span at most {MAX_TRACKED_SHARDS} "
                f"shards of {self.schedule.period_s} s, found {worst}"
            )

    def max_tracked(self, margin_s: int = 0) -> int:
        """The most shards `tracked(now, margin_s)` can name at any `now`: those meeting
        an interval of grace + max validity + twice the margin."""
        span = self.grace_s + self.max_validity_s + 2 * margin_s
        return span // self.schedule.period_s + 2

    def state(self, shard: Shard, now: int) -> ShardState:
        return self.schedule.state(shard, now, self.grace_s)

    def tracked(self, now: int, margin_s: int = 0) -> list[Shard]:
        """Every shard not droppable at `now - margin_s`, up to the shard of the latest
        expiry a credential issued at `now + margin_s` may have. A node serves the
        plan widened by a clock margin, so a station whose clock runs a little ahead or
        behind still finds every shard it follows."""
        sch = self.schedule
        # Droppable once now >= end + grace: the first kept shard ends after now - grace.
        low = now - margin_s - self.grace_s
        first = 0 if low < sch.epoch else sch.shard_for(low).number
        high = max(now + margin_s + self.max_validity_s, sch.epoch)
        last = sch.shard_for(high).number
        return [sch.shard(n) for n in range(first, last + 1)]


def render_frozen_line(shard: Shard) -> str:
    """The checkpoint extension line that marks a shard's final checkpoint."""
    return f"{FROZEN_EXTENSION_PREFIX}{shard.number} {shard.end}"


def find_frozen(extensions: Iterable[str]) -> tuple[int, int] | None:
    """(shard number, end) from a checkpoint's frozen line, None when it has none;
    raise ShardError for a malformed or repeated one."""
    found = [e for e in extensions if e.startswith(FROZEN_EXTENSION_PREFIX)]
    if not found:
        return None
    if len(found) > 1:
        raise ShardError(f"expected one frozen line, found {len(found)}")
    m = FROZEN_LINE_RE.fullmatch(found[0])
    if m is None:
        raise ShardError(f"expected '{FROZEN_EXTENSION_PREFIX}<number> <end>', found {found[0]!r}")
    return int(m.group(1)), int(m.group(2))


def check_leaf(shard: Shard, leaf: TimestampedEntry) -> None:
    """The shard's rule for one leaf, raising ShardRuleError: an anchor's expiry lies in
    the shard's period (so a station looks it up in the shard of its `exp`), and no leaf
    is logged after the shard froze (beyond FREEZE_LEEWAY_S for the last batch).
    Revocations are bound to their shard by the ordinary rules (NOT_ANCHORED)."""
    if leaf.timestamp_ms >= (shard.end + FREEZE_LEEWAY_S) * 1000:
        raise ShardRuleError(
            SHARD_FROZEN_RULE,
            f"leaf at {leaf.timestamp_ms} ms logged after {shard.origin} froze at {shard.end}",
        )
    entry = decode_entry(leaf.entry_bytes)
    if isinstance(entry, CredentialAnchored) and not shard.start <= entry.expires_at < shard.end:
        raise ShardRuleError(
            WRONG_SHARD_RULE,
            f"expected an expiry in [{shard.start}, {shard.end}) for {shard.origin}, "
            f"found {entry.expires_at}",
        )
