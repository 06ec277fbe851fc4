"""The station's replay memory: one per checkpoint through Redis, or local to one station.

Holder proofs are fresh for about a minute (credential.verify): within that window the
same QR (a screenshot, a photo) must pass once at the checkpoint, not once per lane. A
lone station keeps its memory in process (`credential.verify.InMemoryReplayGuard`);
stations at one checkpoint share one Redis (`replay = "redis://host:6379/0"` in
station.toml) and record each proof with one atomic `SET key 1 NX PX ttl` (Redis
SET, NX: only if absent; PX: expiry in milliseconds): the first lane to record it wins,
every other lane sees it present and denies `proof_replayed`.

When Redis is unreachable the guard falls back to the local memory (a checkpoint keeps
working) and says so (`degraded`, shown on the kiosk): during that time a proof is
refused twice only at the same lane. Redis is retried after `retry_s`. Keys hold only
a hash of what the proof signed (never a name, a document or the QR itself).

What it does not do: verify anything (credential.verify does) or hold state across a
Redis restart (proofs expire within two minutes anyway).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from credential.errors import ProofReplayedError
from credential.verify import InMemoryReplayGuard
from verifier.errors import StationConfigError

log = logging.getLogger(__name__)

KEY_PREFIX = "hb:replay:"  # Redis key namespace of the shared replay memory
REDIS_TIMEOUT_S = 0.25  # seconds per Redis call: a verdict must not wait on a dead store
REDIS_RETRY_S = 5.0  # seconds after a Redis failure before the guard tries Redis again
MEMORY = "memory"  # station.toml `replay` value for a lone station's own memory
MIN_TTL_MS = 1  # Redis refuses PX 0


class ReplayStore(Protocol):
    """What the station's guard needs of Redis: SET NX PX, as redis-py exposes it."""

    def set(self, name: str, value: bytes, nx: bool, px: int) -> Any: ...


@dataclass(frozen=True)
class ReplayStatus:
    """What the kiosk shows about the replay memory."""

    shared: bool  # configured to share memory with the checkpoint's other lanes
    degraded: bool  # shared memory unreachable: this lane remembers on its own
    detail: str


class SharedReplayGuard:
    """credential.verify.ReplayGuard over a shared store, with a local fallback."""

    def __init__(
        self,
        store: ReplayStore,
        *,
        where: str = "redis",
        retry_s: float = REDIS_RETRY_S,
        monotonic: Callable[[], float] = time.monotonic,
        errors: tuple[type[BaseException], ...] = (OSError,),
    ) -> None:
        self.store = store
        self.where = where
        self.retry_s = retry_s
        self._monotonic = monotonic
        self._errors = errors
        self._local = InMemoryReplayGuard()
        self._failed_at: float | None = None
        self._lock = threading.Lock()

    @property
    def degraded(self) -> bool:
        return self._failed_at is not None

    def status(self) -> ReplayStatus:
        if self.degraded:
            return ReplayStatus(True, True, f"shared replay memory ({self.where}) unreachable")
        return ReplayStatus(True, False, f"shared replay memory ({self.where})")

    def check_and_record(self, proof_id: bytes, expires_at: float, now: float) -> None:
        # Always recorded locally too: a lane that falls back keeps what it saw.
        with self._lock:
            self._local.check_and_record(proof_id, expires_at, now)
            failed_at = self._failed_at
        if failed_at is not None and self._monotonic() - failed_at < self.retry_s:
            return
        ttl_ms = max(MIN_TTL_MS, math.ceil((expires_at - now) * 1000))
        try:
            first = self.store.set(KEY_PREFIX + proof_id.hex(), b"1", nx=True, px=ttl_ms)
        except self._errors as e:
            with self._lock:
                if self._failed_at is None:
                    log.warning("replay memory %s unreachable (%s): local only", self.where, e)
                self._failed_at = self._monotonic()
            return
        with self._lock:
            if self._failed_at is not None:
                log.info("replay memory %s reachable again", self.where)
            self._failed_at = None
        if not first:
            raise ProofReplayedError("this holder proof was already presented at this checkpoint")


class LocalReplayGuard(InMemoryReplayGuard):
    """A lone station's own replay memory, with the same status call as the shared one."""

    def status(self) -> ReplayStatus:
        return ReplayStatus(False, False, "this station's own replay memory")


def parse_replay_setting(value: str) -> str:
    """`memory` or a redis:// / rediss:// / unix:// URL; anything else is refused."""
    if value == MEMORY or value.startswith(("redis://", "rediss://", "unix://")):
        return value
    raise StationConfigError(
        f"replay: expected {MEMORY!r} or a redis://, rediss:// or unix:// URL, found {value!r}"
    )


def replay_guard_for(setting: str) -> SharedReplayGuard | LocalReplayGuard:
    """The replay guard a station.toml `replay` setting asks for."""
    setting = parse_replay_setting(setting)
    if setting == MEMORY:
        return LocalReplayGuard()
    import redis

    client = redis.Redis.from_url(
        setting,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        retry_on_timeout=False,
    )
    host = setting.split("@")[-1]  # never show a password from the URL
    store = cast(ReplayStore, client)  # redis-py's set() takes these keywords and more
    return SharedReplayGuard(store, where=host, errors=(redis.RedisError, OSError))
