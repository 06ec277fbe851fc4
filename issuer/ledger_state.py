"""The issuer's view of its own region's log: latest checkpoint and its cosigners.

`assess_checkpoint` is pure: the checkpoint bytes a node served, the region's consortium
member and the consortium -> `CheckpointView` (tree size, which members' witnesses
cosigned, whether the consortium policy is met). It verifies the log's signature and
every cosignature by a known witness (C2SP tlog-checkpoint, tlog-cosignature v1) and
raises `LedgerUnavailableError` on anything else. `ConsortiumCheckpoints` is the I/O
edge: it fetches `GET /checkpoint` (C2SP tlog-tiles) from the region's node through a
`CheckpointFetcher` and caches the view for `CACHE_TTL_S`. It decides nothing about
outbox rows: `issuer.services.AdminService.entry_status` applies the view to an entry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import requests

from issuer.context import IssuerContext
from issuer.errors import ConfigError, LedgerUnavailableError
from issuer.services import CheckpointView
from ledger.checkpoint import CosignatureVerifier, open_checkpoint
from ledger.consortium import Consortium, Member
from ledger.errors import LedgerError
from ledger.note import NoteVerifier

FETCH_TIMEOUT_S = 3.0  # seconds per checkpoint fetch: an admin page waits on it
CACHE_TTL_S = 1.0  # seconds one fetched view is reused across requests
MAX_CHECKPOINT_BYTES = 64 * 1024  # bytes; a checkpoint with a few cosignatures is < 2 KiB


class CheckpointFetcher(Protocol):
    """Returns the signed checkpoint (with cosignature lines) a node serves."""

    def fetch(self, base_url: str) -> bytes: ...


class HttpCheckpointFetcher:
    def __init__(self, timeout_s: float = FETCH_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def fetch(self, base_url: str) -> bytes:
        url = base_url.rstrip("/") + "/checkpoint"
        try:
            r = requests.get(url, timeout=self.timeout_s)
        except requests.RequestException as e:
            raise LedgerUnavailableError(f"cannot reach {url}: {type(e).__name__}") from e
        if r.status_code != 200:
            raise LedgerUnavailableError(f"expected 200 from {url}, found {r.status_code}")
        if len(r.content) > MAX_CHECKPOINT_BYTES:
            raise LedgerUnavailableError(
                f"expected a checkpoint of at most {MAX_CHECKPOINT_BYTES} bytes, "
                f"found {len(r.content)}"
            )
        return r.content


def assess_checkpoint(data: bytes, member: Member, consortium: Consortium) -> CheckpointView:
    """Open `member`'s checkpoint and count the consortium witnesses that cosigned it.

    A bad log signature, a bad cosignature by a known witness (signed-note: a note with
    an invalid known signature is rejected) or a foreign origin raises; signatures by
    unknown keys are ignored (C2SP signed-note)."""
    if member.log is None or member.log_origin is None:
        raise ConfigError(f"consortium member {member.id} runs no log")
    witnesses = [CosignatureVerifier.from_vkey(m.witness.text) for m in consortium.members]
    try:
        opened = open_checkpoint(data, NoteVerifier.from_vkey(member.log.text), witnesses)
    except (LedgerError, ValueError) as e:
        raise LedgerUnavailableError(f"{member.id} checkpoint refused: {e}") from e
    cp = opened.checkpoint
    if cp.origin != member.log_origin:
        raise LedgerUnavailableError(
            f"expected checkpoint origin {member.log_origin}, found {cp.origin}"
        )
    cosigners = tuple(m.id for m in consortium.members if m.witness.name in opened.cosignatures)
    return CheckpointView(
        size=cp.size,
        cosigned=consortium.policy.satisfied_by(cosigners),
        witnesses=cosigners,
        quorum=consortium.policy.describe(),
    )


@dataclass
class ConsortiumCheckpoints:
    """A `Callable[[], CheckpointView]` for one region, over HTTP, with a short cache."""

    consortium: Consortium
    region: str
    node_url: str | None = None  # the issuer's own ledger_url; else the consortium's
    fetcher: CheckpointFetcher = field(default_factory=HttpCheckpointFetcher)
    clock: Callable[[], float] = time.monotonic
    _cache: tuple[float, CheckpointView] | None = None
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
        try:
            member = self.consortium.member(self.region)
        except LedgerError as e:
            raise ConfigError(f"region {self.region} is not in the consortium file") from e
        view = assess_checkpoint(
            self.fetcher.fetch(self.node_url or member.node_url), member, self.consortium
        )
        with self._lock:
            self._cache = (now, view)
        return view
