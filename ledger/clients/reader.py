"""The read side of a log: one `LogReader` interface and one bounded HTTP reader.

`LogReader` is what every consumer of a log's published state reads through — the sync
client (ledger.clients.sync), the validating mirror (ledger.joint.mirror), the outside auditor
(ledger.clients.audit), the issuer's ledger page (issuer.ledger_state): the checkpoint, hash
tiles and entry bundles of C2SP tlog-tiles. In-memory fakes implement it in tests.

`HttpLogReader` is its one HTTP implementation, over a tlog-tiles prefix (a node's
root, or a mirror's `<node>/mirror/<hex origin hash>`). Every body is read through
`bounded_request`, which streams it and stops at a named per-resource limit, so a
hostile node or mirror cannot make a reader buffer more than that limit: the
auditor and the witnesses read other operators' nodes. `ledger.clients.client.LedgerClient`
sends its writes and JSON requests through the same `bounded_request`.

What it does not do: verify anything it reads (ledger.log.checkpoint, ledger.log.merkle and
ledger.log.tiles do), retry, or cache.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from common.observability import outgoing_headers
from ledger.log import tiles
from ledger.log.errors import LedgerError
from ledger.log.merkle import HASH_SIZE

DEFAULT_TIMEOUT_S = 10.0  # seconds per HTTP request
READ_CHUNK_BYTES = 64 * 1024  # bytes read from the socket at a time
MAX_CHECKPOINT_BYTES = 1 << 16  # bytes; a checkpoint with a few cosignatures is < 2 KiB
MAX_TILE_BYTES = tiles.TILE_WIDTH * HASH_SIZE  # bytes; a full hash tile (tlog-tiles)
MAX_BUNDLE_BYTES = tiles.TILE_WIDTH * (2 + 0xFFFF)  # bytes; 256 entries of at most 64 KiB
MAX_SNAPSHOT_BYTES = 64 << 20  # bytes; ledger.log.revocation.MAX_BITMAP_BYTES
MAX_JSON_BYTES = 1 << 20  # bytes; a status, a proof, receipts for one request
MAX_ERROR_TEXT_CHARS = 200  # characters of an error body quoted in a message
# The socket timeout bounds each read, not the answer: a source that drips a byte every
# few seconds would hold a station's sync (every tracked shard, every region after it)
# for hours while staying under every size limit. So an answer is abandoned once it
# has taken longer than the per-request timeout and still averages less than this
# rate, or once it has taken MAX_ANSWER_S at all; the next source is then tried.
MIN_TRANSFER_BYTES_PER_S = 16 * 1024  # bytes per second, averaged over the answer
MAX_ANSWER_S = 300.0  # seconds for one whole answer (a 64 MiB snapshot at >= 220 KiB/s)
# The same holds for the status line and headers, which are read before any of the
# above can be checked: a source sending one header byte every few seconds never trips
# the per-read timeout. They must all have arrived within the per-request timeout
# (plus this slack) of the request being sent; past it the connection is shut down.
HEADER_SLACK_S = 1.0  # seconds


class LogReadError(LedgerError):
    """Root of the reader's failures; the next source (if any) is worth trying."""


class LogUnreachableError(LogReadError):
    """No answer (connection refused or reset, timeout)."""


class LogTooLargeError(LogReadError):
    """The answer is longer than the limit for what was asked."""


class LogStatusError(LogReadError):
    """The answer has an unexpected HTTP status; `answer` holds it (bounded)."""

    def __init__(self, message: str, answer: HttpAnswer) -> None:
        super().__init__(message)
        self.answer = answer

    @property
    def status(self) -> int:
        return self.answer.status


class LogNotFoundError(LogStatusError):
    """HTTP 404: the checkpoint, tile or bundle does not exist (yet)."""


@dataclass(frozen=True)
class HttpAnswer:
    """A response whose body was read within a limit."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def content_type(self) -> str:
        return str(self.headers.get("Content-Type", ""))


_header_deadline = threading.local()  # .at: monotonic time the headers are due by


def _cut(sock: socket.socket, missed: threading.Event) -> None:
    missed.set()
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns at once (EOF)


class _HeaderDeadline:
    """getresponse (status line and headers) bounded by the calling thread's deadline,
    if any: a timer shuts the socket down when it passes."""

    def getresponse(self) -> Any:
        at: float | None = getattr(_header_deadline, "at", None)
        sock = getattr(self, "sock", None)
        if at is None or sock is None:
            return super().getresponse()  # type: ignore[misc]
        missed = threading.Event()
        timer = threading.Timer(max(0.0, at - time.monotonic()), _cut, (sock, missed))
        timer.daemon = True
        timer.start()
        try:
            response = super().getresponse()  # type: ignore[misc]
        except Exception as e:
            if missed.is_set():
                raise _HeadersTooSlowError(f"no complete answer headers in time ({e})") from e
            raise
        finally:
            timer.cancel()
        if missed.is_set():  # http.client takes headers cut short by EOF as complete
            response.close()
            raise _HeadersTooSlowError("no complete answer headers in time")
        return response


class _HeadersTooSlowError(OSError):
    pass


class _DeadlineHTTPConnection(_HeaderDeadline, HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_HeaderDeadline, HTTPSConnection):
    pass


class _DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """requests' own adapter whose connections honour `bounded_request`'s deadline for
    the answer's headers (HEADER_SLACK_S); otherwise the same."""

    def init_poolmanager(self, *args: Any, **kw: Any) -> None:
        super().init_poolmanager(*args, **kw)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _DeadlineHTTPPool,
            "https": _DeadlineHTTPSPool,
        }


def _with_deadline_adapter(session: requests.Session, url: str) -> None:
    """Mount DeadlineAdapter on a session that uses requests' plain adapter for `url`
    (a session with an adapter of its own choosing is left as it is)."""
    if type(session.get_adapter(url)) is HTTPAdapter:
        for prefix in ("http://", "https://"):
            if type(session.adapters.get(prefix)) is HTTPAdapter:
                session.mount(prefix, DeadlineAdapter())


def bounded_request(
    session: requests.Session,
    method: str,
    url: str,
    *,
    limit: int,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_answer_s: float = MAX_ANSWER_S,
    **kw: Any,
) -> HttpAnswer:
    """Send one request and read at most `limit` body bytes (after content decoding).

    Raises LogUnreachableError when there is no answer, or when it trickles in slower
    than MIN_TRANSFER_BYTES_PER_S (after `timeout`) or takes over `max_answer_s`;
    LogTooLargeError when the declared or actual body is longer than `limit`. Any status
    is returned. The status line and headers must have arrived within `timeout` +
    HEADER_SLACK_S (requests' plain adapter is swapped for DeadlineAdapter to hold them
    to it). The current request (or background work) id goes along as X-Request-ID
    (common.observability.outgoing_headers), so the node logs the caller's id."""
    kw["headers"] = {**outgoing_headers(), **(kw.get("headers") or {})}
    started = time.monotonic()
    _with_deadline_adapter(session, url)
    _header_deadline.at = started + timeout + HEADER_SLACK_S
    try:
        with session.request(method, url, timeout=timeout, stream=True, **kw) as r:
            _header_deadline.at = None  # the body is paced below instead
            declared = r.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise LogTooLargeError(f"{method} {url}: body over {limit} bytes")
            chunks: list[bytes] = []
            size = 0
            body_started = time.monotonic()
            while True:
                # One socket read at most (each bounded by `timeout`), so the pace is
                # checked between reads however slowly the bytes come.
                chunk = r.raw.read1(READ_CHUNK_BYTES, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise LogTooLargeError(f"{method} {url}: body over {limit} bytes")
                chunks.append(chunk)
                now = time.monotonic()
                _check_pace(
                    method, url, size, now - body_started, now - started, timeout, max_answer_s
                )
            return HttpAnswer(r.status_code, r.headers, b"".join(chunks))
    except requests.RequestException as e:
        raise LogUnreachableError(f"{method} {url}: {type(e).__name__}: {e}") from e
    except (urllib3.exceptions.HTTPError, OSError) as e:  # raised by the raw reads
        raise LogUnreachableError(f"{method} {url}: {type(e).__name__}: {e}") from e
    finally:
        _header_deadline.at = None


def _check_pace(
    method: str,
    url: str,
    size: int,
    body_s: float,
    total_s: float,
    timeout: float,
    max_answer_s: float = MAX_ANSWER_S,
) -> None:
    """Raise LogUnreachableError for a body that, after its first `timeout` seconds,
    averages under MIN_TRANSFER_BYTES_PER_S, or an answer older than `max_answer_s`."""
    if total_s > max_answer_s or (
        body_s > timeout and size < MIN_TRANSFER_BYTES_PER_S * (body_s - timeout)
    ):
        raise LogUnreachableError(
            f"{method} {url}: {size} bytes in {body_s:.1f} s, slower than "
            f"{MIN_TRANSFER_BYTES_PER_S} bytes/s (or over {max_answer_s:.1f} s in all)"
        )


class LogReader(Protocol):
    """Read side of one log at one place (its node or a mirror): C2SP tlog-tiles."""

    @property
    def name(self) -> str: ...

    def checkpoint(self) -> bytes: ...

    def tile(self, level: int, index: int, width: int = tiles.TILE_WIDTH) -> bytes: ...

    def entry_bundle(self, index: int, width: int = tiles.TILE_WIDTH) -> bytes: ...


@dataclass
class HttpLogReader:
    """`LogReader` over HTTP at a tlog-tiles prefix: `<prefix>/checkpoint`,
    `<prefix>/tile/<L>/<N>`, `<prefix>/tile/entries/<N>`; plus the node's
    content-addressed revocation snapshots and deltas (ledger.node.revocation_api)."""

    prefix: str
    session: requests.Session = field(default_factory=requests.Session)
    timeout: float = DEFAULT_TIMEOUT_S
    # Seconds one whole answer may take; the sync client lowers it to what is left of
    # a source's budget for the pass (ledger.clients.sync.PacedSource).
    max_answer_s: float = MAX_ANSWER_S

    def __post_init__(self) -> None:
        self.prefix = self.prefix.rstrip("/")

    @property
    def name(self) -> str:
        return self.prefix

    def get(self, path: str, limit: int) -> bytes:
        """GET `<prefix>/<path>`: the body of a 200, or a typed LogReadError."""
        url = f"{self.prefix}/{path}"
        answer = bounded_request(
            self.session, "GET", url, limit=limit, timeout=self.timeout,
            max_answer_s=self.max_answer_s,
        )  # fmt: skip
        if answer.status == 200:
            return answer.body
        cls = LogNotFoundError if answer.status == 404 else LogStatusError
        raise cls(f"{url}: HTTP {answer.status}", answer)

    def checkpoint(self) -> bytes:
        return self.get("checkpoint", MAX_CHECKPOINT_BYTES)

    def tile(self, level: int, index: int, width: int = tiles.TILE_WIDTH) -> bytes:
        return self.get(tiles.TileId(level, index, width).path(), MAX_TILE_BYTES)

    def entry_bundle(self, index: int, width: int = tiles.TILE_WIDTH) -> bytes:
        return self.get(tiles.entry_bundle_path(index, width), MAX_BUNDLE_BYTES)

    def revocation_snapshot(self, digest: bytes) -> bytes:
        return self.get(f"revocation/snapshot/{digest.hex()}", MAX_SNAPSHOT_BYTES)

    def revocation_delta(self, from_digest: bytes, to_digest: bytes) -> bytes:
        return self.get(
            f"revocation/delta/{from_digest.hex()}/{to_digest.hex()}", MAX_SNAPSHOT_BYTES
        )
