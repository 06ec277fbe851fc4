"""The anchor worker: drains the outbox onto the region's log.

Rows are read in id order, submitted in batches through a `LedgerPort`, and marked
with the log index the node returned. Submission is idempotent on the node (identical
entry bytes get their existing index), so a crash between the submit and the update
only means the batch is sent again: every row ends up in the log exactly once.
Failures back off exponentially per row, capped at `anchor_max_backoff_s`.
The worker runs as a thread in the service or alone (`healthbridge issuer anchor-worker`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, update

from issuer.context import IssuerContext
from issuer.errors import ConfigError
from issuer.models import OutboxRow
from ledger.client import LedgerClient

log = logging.getLogger(__name__)
BACKOFF_BASE_S = 0.25  # seconds before the first retry; doubles per failed attempt


class LedgerPort(Protocol):
    """What the worker needs from a ledger node: submit entries, get their indices."""

    def submit(self, entries: list[bytes]) -> list[int]: ...


@dataclass
class InMemoryLedger:
    """A LedgerPort for tests: an append-only list that dedupes identical entries."""

    entries: list[bytes] = field(default_factory=list)
    index: dict[bytes, int] = field(default_factory=dict)
    fail_next: int = 0

    def submit(self, entries: list[bytes]) -> list[int]:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("ledger unavailable (injected)")
        out = []
        for e in entries:
            if e not in self.index:
                self.index[e] = len(self.entries)
                self.entries.append(e)
            out.append(self.index[e])
        return out


class ClientLedgerPort:
    """A LedgerPort over ledger.client.LedgerClient (real HTTP to the region's node)."""

    def __init__(self, base_url: str, writer_key: Ed25519PrivateKey | Path, timeout: float) -> None:
        self.client = LedgerClient(base_url, writer_key, timeout)

    def submit(self, entries: list[bytes]) -> list[int]:
        return [r.index for r in self.client.submit(entries)]


def ledger_port_for(ctx: IssuerContext) -> LedgerPort:
    if not ctx.config.ledger_url:
        raise ConfigError("ledger_url is not configured: the outbox cannot be anchored")
    return ClientLedgerPort(
        ctx.config.ledger_url, ctx.keys.writer_key(), ctx.config.ledger_timeout_s
    )


def pending_count(ctx: IssuerContext) -> int:
    with ctx.sessions() as s:
        return int(s.scalar(select(func.count()).where(OutboxRow.log_index.is_(None))) or 0)


def anchor_once(ctx: IssuerContext, ledger: LedgerPort, now: float | None = None) -> int:
    """Submit one batch of due outbox rows; return how many were anchored (0: idle or
    failed, the failure recorded on the rows with their next attempt time)."""
    now = ctx.clock.now() if now is None else now
    with ctx.sessions() as s:
        rows = s.execute(
            select(OutboxRow.id, OutboxRow.entry, OutboxRow.attempts)
            .where(OutboxRow.log_index.is_(None), OutboxRow.next_attempt_at <= now)
            .order_by(OutboxRow.id)
            .limit(ctx.config.anchor_batch)
        ).all()
    if not rows:
        return 0
    try:
        indices = ledger.submit([r.entry for r in rows])
        if len(indices) != len(rows):
            raise ValueError(f"expected {len(rows)} receipts, found {len(indices)}")
    except Exception as e:  # any failure of the edge: retry later, never lose a row
        log.warning("anchoring %d outbox rows failed: %s", len(rows), type(e).__name__)
        with ctx.sessions.begin() as s:
            for r in rows:
                delay = min(ctx.config.anchor_max_backoff_s, BACKOFF_BASE_S * 2**r.attempts)
                s.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id == r.id)
                    .values(
                        attempts=r.attempts + 1,
                        next_attempt_at=now + delay,
                        last_error=f"{type(e).__name__}: {e}"[:500],
                    )
                )
        return 0
    # One executemany for the batch (ORM bulk UPDATE by primary key): the indices of a
    # whole submission are committed together, or not at all and the batch is re-sent.
    with ctx.sessions.begin() as s:
        s.execute(
            update(OutboxRow),
            [
                {"id": r.id, "log_index": index, "last_error": None}
                for r, index in zip(rows, indices, strict=True)
            ],
        )
    return len(rows)


def drain(ctx: IssuerContext, ledger: LedgerPort, max_rounds: int = 1000) -> int:
    """Anchor until nothing is due (tests, CLI); returns the number anchored."""
    total = 0
    for _ in range(max_rounds):
        n = anchor_once(ctx, ledger)
        if n == 0:
            break
        total += n
    return total


class AnchorWorker:
    """A daemon thread running `anchor_once` until stopped."""

    def __init__(self, ctx: IssuerContext, ledger: LedgerPort) -> None:
        self.ctx, self.ledger = ctx, ledger
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anchor-worker", daemon=True)

    def start(self) -> AnchorWorker:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                n = anchor_once(self.ctx, self.ledger)
            except Exception:  # the database itself failed; keep the thread alive
                log.exception("anchor worker round failed")
                n = 0
            if n == 0:
                self._wake.wait(self.ctx.config.anchor_interval_s)
                self._wake.clear()
