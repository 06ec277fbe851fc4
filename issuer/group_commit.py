"""Group commit of credential fetches: many request threads, one transaction.

A wallet's `GET /v1/credential` writes twice: the holder's last accepted HB-Device
timestamp, and (when its status changed or the credential nears expiry) a fresh
credential with its outbox row. Committing each request alone costs one durable write
(fsync with SQLite `synchronous=FULL`, a WAL flush on PostgreSQL) per request. The
`GroupCommitter` takes every fetch queued while the previous group was being written
and handles them in ONE transaction (`issue_many` signs them together); each
request thread gets its credential only after that transaction committed, so nothing
handed out can be lost with an uncommitted outbox row (docs/threat-model.md,
"What must never happen").

What it does not do: authenticate (the request thread verified the device signature
before queueing) or decide the status rules (issuer.issuance).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from issuer.context import IssuerContext
from issuer.device_auth import check_order
from issuer.errors import IssuerError, LedgerUnavailableError, UnauthorizedError
from issuer.fetch_reads import group_state
from issuer.issuance import Issued, issue_many, lock_residents, reusable_from
from issuer.models import Holder
from issuer.status_rules import StatusDecision

log = logging.getLogger(__name__)
MAX_GROUP = 256  # fetches per transaction at most
WAIT_S = 30.0  # seconds a request waits for the commit lock before giving up


@dataclass
class Fetch:
    """One authenticated fetch waiting for its group's commit."""

    holder_pk: int
    auth_ts: int
    now: int
    # Set when the fetch is answered (done) or when its thread is made the next leader.
    wake: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    result: Issued | None = None
    error: Exception | None = None


class GroupCommitter:
    """Leader-based group commit, no extra thread. A request queues its fetch; when no
    group is being written it becomes the leader and commits every fetch queued so far
    (a lone request commits at once, with no hand-off). The others sleep on their own
    event: the leader wakes each member of its group once the group has committed, and
    if fetches arrived meanwhile it hands the lead to the first of them, who commits
    them all as the next group. So a group holds everything that queued during the
    previous commit.

    Before, followers queued on the commit lock itself: each had to take the lock in
    turn only to find its fetch answered, and whichever returning thread queued first
    took the lock with a group of one or two. Groups averaged about two fetches with 16
    threads, and the fixed cost of a group (its reads, counter, inserts, commit) was
    paid for every two credentials."""

    def __init__(self, ctx: IssuerContext, max_group: int = MAX_GROUP) -> None:
        self.ctx, self.max_group = ctx, max_group
        self._pending: list[Fetch] = []
        self._lock = threading.Lock()  # guards _pending and _leading
        self._leading = False
        self.groups = 0  # groups committed (or failed), for tests and benchmarks
        self.fetches = 0  # fetches in those groups

    def start(self) -> GroupCommitter:
        return self

    def stop(self) -> None:
        return None

    def fetch(self, holder_pk: int, auth_ts: int, now: int) -> Issued:
        """Record the accepted timestamp and return the holder's current credential
        (fresh when due), after the group transaction holding both has committed."""
        job = Fetch(holder_pk, auth_ts, now)
        with self._lock:
            self._pending.append(job)
            lead = not self._leading
            self._leading = True
        if lead:
            # Let the threads woken by the previous group run before this group is
            # taken: the ones coming straight back with their next fetch join it.
            time.sleep(0)
        else:
            self._follow(job)
        if not job.done:
            self._lead_until(job)
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _follow(self, job: Fetch) -> None:
        """Sleep until the fetch is answered or this thread is handed the lead."""
        if job.wake.wait(WAIT_S):
            return
        with self._lock:
            if job.wake.is_set():  # answered, or made the leader, just now
                return
            if job in self._pending:  # never picked up: give up on it
                self._pending.remove(job)
                raise LedgerUnavailableError(f"the issuance group did not commit in {WAIT_S}s")
        job.wake.wait()  # in a group being written: its outcome comes with the commit

    def _lead_until(self, job: Fetch) -> None:
        """Commit groups until `job` is answered, then hand the lead on (or drop it)."""
        while True:
            with self._lock:
                group = self._pending[: self.max_group]
                del self._pending[: self.max_group]
            if group:
                self._run(group)
            with self._lock:
                if not job.done and self._pending:
                    continue
                if self._pending:
                    heir = self._pending[0]
                    heir.wake.set()  # not done: it wakes as the leader of the next group
                else:
                    self._leading = False
                return

    def _lead(self) -> None:
        """Commit the fetches queued so far as one group (the caller leads)."""
        with self._lock:
            group = self._pending[: self.max_group]
            del self._pending[: self.max_group]
        if group:
            self._run(group)

    def _run(self, group: list[Fetch]) -> None:
        try:
            self._commit(group)
        except Exception as e:  # the whole transaction failed: every member fails
            log.warning("group of %d fetches failed: %s", len(group), type(e).__name__)
            for job in group:
                job.result = None
                job.error = (
                    e
                    if isinstance(e, IssuerError)
                    else LedgerUnavailableError("the issuer could not commit the credential")
                )
        self.groups += 1
        self.fetches += len(group)
        for job in group:
            job.done = True
            job.wake.set()

    def _commit(self, group: list[Fetch]) -> None:
        ready: list[tuple[Fetch, Issued]] = []
        reorder_s = self.ctx.config.device_auth_reorder_s
        with self.ctx.sessions.begin() as s:
            due: list[tuple[Fetch, Holder, StatusDecision]] = []
            checked: dict[tuple[int, int], IssuerError | tuple[StatusDecision, Issued | None]] = {}
            # One statement reads every holder of the group with its resident, latest
            # credential (and its outbox row), status inputs and the active signing key
            # (fetch_reads.GROUP_STATE); `_loaded` keeps the loaded entities alive (the
            # identity map holds only weak references).
            now_max = max(job.now for job in group)
            # Their residents first, so no status change commits between the status
            # read below and the insert of a fresh credential (issuance.lock_residents).
            pks = sorted({job.holder_pk for job in group})
            lock_residents(s, pks)
            # Records read for the group's earliest time serve every later one.
            now_min = min(job.now for job in group)
            states, key_now_max, _loaded = group_state(s, pks, now_max, now_min)
            for job in group:
                state = states.get(job.holder_pk)
                if state is None:
                    job.error = UnauthorizedError("unknown holder")
                    continue
                holder = state.holder
                # Re-checked inside the write transaction against the high-water mark
                # that an earlier fetch (of this group or another) may have moved. The
                # mark only grows: an overtaken request must not pull it back.
                try:
                    check_order(job.auth_ts, holder.last_auth_ts, reorder_s)
                except UnauthorizedError as e:
                    job.error = e
                    continue
                if job.auth_ts > holder.last_auth_ts:
                    holder.last_auth_ts = job.auth_ts
                # Nothing is written before issue_many below, so fetches of one holder
                # at one time in this group share one status decision and reuse check.
                key = (job.holder_pk, job.now)
                if key not in checked:
                    try:
                        decision = state.status(job.now)  # pure: no SQL
                    except IssuerError as e:
                        checked[key] = e
                    else:
                        reuse = reusable_from(
                            self.ctx, state.latest, state.outbox_id, decision, job.now
                        )
                        checked[key] = (decision, reuse)
                outcome = checked[key]
                if isinstance(outcome, IssuerError):
                    job.error = outcome
                    continue
                decision, current = outcome
                if current is not None:
                    ready.append((job, current))
                else:
                    due.append((job, holder, decision))
            if due:
                now = max(job.now for job, _, _ in due)
                # The key read with the group was the one active at now_max.
                signing = key_now_max if now == now_max else None
                issued = issue_many(self.ctx, s, [(h, d) for _, h, d in due], now, signing)
                ready.extend((job, i) for (job, _, _), i in zip(due, issued, strict=True))
        # Only now, after the commit, do the request threads see their credentials.
        for job, result in ready:
            job.result = result
