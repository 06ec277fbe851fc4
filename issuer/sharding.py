"""Which temporal shard of the region's log an outbox row goes to (ledger.log.shards).

What it does: reads the region's shard plan from the consortium file named in the
issuer's config (cached per file version) and names the shard of a credential's
expiry. An anchor row carries the shard of the credential it anchors, a revocation or
reinstatement row the shard of the credential it names: a credential's shard is fixed
when it is signed. Key entries and audit digests carry none (the node sends key
entries to every shard and an audit digest to the open one).

What it does not: talk to the node (issuer.anchor does). A missing or unreadable
consortium file means no shard: the row then goes to the node's routing endpoint,
which places it by content just the same.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from issuer.context import IssuerContext
from issuer.errors import ShardUnavailableError
from ledger.log.consortium import ConsortiumError, load_consortium
from ledger.log.shards import ShardError, ShardPlan

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def _plan(path: str, mtime_ns: int, region: str) -> ShardPlan | None:
    del mtime_ns  # part of the cache key only: a rewritten file is read again
    try:
        consortium = load_consortium(path)
        return consortium.member(region).shards
    except ConsortiumError as e:
        log.warning("no shard plan for %s from %s: %s", region, path, e)
        return None


def shard_plan(ctx: IssuerContext) -> ShardPlan | None:
    """The region's shard plan, None when its log is not sharded (or no file)."""
    path = ctx.config.consortium_path
    if path is None:
        return None
    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError:
        return None
    return _plan(str(path), mtime, ctx.region)


def check_expiry_fits(plan: ShardPlan | None, now: int, expires_at: int) -> None:
    """Raise ShardUnavailableError unless a credential signed at `now` expiring at
    `expires_at` belongs in a shard the plan tracks at `now`: not before the epoch, not
    beyond `max_validity_s` (the node runs, and witnesses cosign, no shard further out),
    and not in a shard already frozen. An issuer whose credential_validity_s exceeds the plan's
    max_validity_s would otherwise sign credentials whose anchors every node refuses."""
    if plan is None:
        return
    sch = plan.schedule
    if expires_at < sch.epoch:
        raise ShardUnavailableError(
            f"expected an expiry at or after the shard epoch {sch.epoch}, found {expires_at}"
        )
    if sch.shard_for(expires_at).end <= now:
        raise ShardUnavailableError(
            f"expected an expiry in a shard not yet frozen at {now}, found {expires_at}"
        )
    if expires_at - now > plan.max_validity_s:
        raise ShardUnavailableError(
            f"expected an expiry within the consortium's max_validity_s "
            f"({plan.max_validity_s} s) of {now}, found {expires_at}"
        )


def shard_of_expiry(
    ctx: IssuerContext, expires_at: int, plan: ShardPlan | bool | None = True
) -> int | None:
    """The number of the shard a credential expiring at `expires_at` is anchored in
    (`plan`: the plan already read for a batch, default: read it now)."""
    if plan is True:
        plan = shard_plan(ctx)
    if not isinstance(plan, ShardPlan):
        return None
    try:
        return plan.schedule.shard_for(expires_at).number
    except ShardError:
        return None  # before the epoch: the node refuses it, typed, naming the rule
