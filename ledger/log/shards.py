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

What this module does not do (yet): route submissions to the shard's sequencer, list
shards in the consortium file, or make witnesses, mirrors and stations follow a
rollover. See docs/ledger-protocol.md for the plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

MIN_PERIOD_S = 3_600  # seconds: shorter shards would multiply checkpoints for no gain
MAX_PERIOD_S = 366 * 86_400  # seconds: CT logs shard by year at most
SHARD_SUFFIX_RE = re.compile(r"^[0-9]{1,12}$")


class ShardError(ValueError):
    """A schedule or a shard name that is not valid."""


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
        if self.epoch < 0:
            raise ShardError(f"expected a non-negative epoch, found {self.epoch}")

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
