"""The one read interface over HTTP: every reader stops at a named limit, so a hostile
node or mirror cannot make an auditor, witness or station buffer an endless body."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from flask import Flask, Response

from common.serving import ServedApp, serve_in_thread
from issuer.errors import LedgerUnavailableError
from issuer.ledger_state import HttpCheckpointFetcher
from ledger.clients.client import LedgerClient, LedgerNotFoundError, LedgerProtocolError
from ledger.clients.reader import (
    MAX_CHECKPOINT_BYTES,
    HttpLogReader,
    LogNotFoundError,
    LogTooLargeError,
    LogUnreachableError,
)

CHUNK = b"x" * 4096
DRIP_S = 0.05  # seconds between the bytes of a dripped answer


def _hostile_node() -> Flask:
    app = Flask("hostile")
    streamed: list[int] = [0]

    def endless() -> Iterator[bytes]:
        while True:  # a body that never ends, without Content-Length (chunked)
            streamed[0] += len(CHUNK)
            yield CHUNK

    app.add_url_rule("/checkpoint", "cp", lambda: Response(endless(), mimetype="text/plain"))
    app.add_url_rule(
        "/tile/entries/000", "bundle", lambda: Response(b"y" * (MAX_CHECKPOINT_BYTES * 64))
    )

    def drip() -> Iterator[bytes]:
        for _ in range(MAX_CHECKPOINT_BYTES // 2):  # under the limit, a byte at a time
            time.sleep(DRIP_S)
            yield b"x"

    app.add_url_rule("/drip/checkpoint", "drip", lambda: Response(drip(), mimetype="text/plain"))
    app.config["STREAMED"] = streamed
    return app


@pytest.fixture()
def hostile() -> Iterator[ServedApp]:
    with serve_in_thread(_hostile_node()) as served:
        yield served


def test_auditor_stops_reading_an_endless_checkpoint(hostile: ServedApp) -> None:
    client = LedgerClient(hostile.url, timeout=5)
    with pytest.raises(LedgerProtocolError, match="body over"):
        client.checkpoint()


def test_log_reader_stops_reading_an_endless_checkpoint(hostile: ServedApp) -> None:
    with pytest.raises(LogTooLargeError):
        HttpLogReader(hostile.url, timeout=5).checkpoint()


def test_issuer_ledger_page_stops_reading_an_endless_checkpoint(hostile: ServedApp) -> None:
    with pytest.raises(LedgerUnavailableError, match="at most"):
        HttpCheckpointFetcher(timeout_s=5).fetch(hostile.url)


def test_a_bundle_within_its_own_limit_is_read_whole(hostile: ServedApp) -> None:
    # 4 MiB is over the checkpoint limit but within an entry bundle's: limits are per resource.
    body = HttpLogReader(hostile.url, timeout=5).entry_bundle(0)
    assert len(body) == MAX_CHECKPOINT_BYTES * 64


def test_missing_resource_is_a_typed_not_found(hostile: ServedApp) -> None:
    with pytest.raises(LogNotFoundError) as e:
        HttpLogReader(hostile.url, timeout=5).tile(0, 7)
    assert e.value.status == 404
    with pytest.raises(LedgerNotFoundError):
        LedgerClient(hostile.url, timeout=5).tile(0, 7)


def test_unreachable_source_is_typed() -> None:
    session = requests.Session()
    with pytest.raises(LogUnreachableError):
        HttpLogReader("http://127.0.0.1:9", session, timeout=2).checkpoint()


def checkpoint_within(reader: HttpLogReader, limit_s: float) -> tuple[BaseException | bytes, float]:
    """Read the checkpoint on a thread; what it gave (or raised) and the seconds it took.
    Fails if it is still reading after `limit_s`."""
    outcome: list[BaseException | bytes] = []

    def read() -> None:
        try:
            outcome.append(reader.checkpoint())
        except BaseException as e:  # handed to the test thread
            outcome.append(e)

    started = time.monotonic()
    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(limit_s)
    assert not t.is_alive(), f"the reader was still reading after {limit_s} s"
    return outcome[0], time.monotonic() - started


def test_log_reader_gives_up_on_a_dripped_checkpoint(hostile: ServedApp) -> None:
    """A byte every 50 ms stays under every size limit and never trips the per-read
    timeout: 32 KiB of it would hold a station's sync for half an hour. The reader
    abandons it once it is past the timeout and slower than MIN_TRANSFER_BYTES_PER_S."""
    got, elapsed = checkpoint_within(HttpLogReader(f"{hostile.url}/drip", timeout=1), 15)
    assert isinstance(got, LogUnreachableError), got
    assert "slower than" in str(got)
    assert elapsed < 5


@pytest.fixture()
def header_dripper() -> Iterator[str]:
    """A raw TCP source that reads a request, then sends its status line and headers
    one byte every DRIP_S seconds, forever (no body ever starts)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=drip_headers, args=(conn,), daemon=True).start()

    def drip_headers(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                head = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"a" * 60_000
                for byte in head:
                    if stop.is_set():
                        return
                    conn.sendall(bytes([byte]))
                    time.sleep(DRIP_S)
            except OSError:
                return  # the reader hung up: what it should do

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()


def test_log_reader_gives_up_on_dripped_headers(header_dripper: str) -> None:
    """The status line and headers are read before any body pacing applies: a byte
    every 50 ms of them never trips the per-read timeout and would hold the sync of
    every region after this source for an hour. They must arrive within the timeout."""
    session = requests.Session()  # requests' plain adapter, as callers pass in
    got, elapsed = checkpoint_within(HttpLogReader(header_dripper, session, timeout=1), 15)
    assert isinstance(got, LogUnreachableError), got
    assert "answer headers in time" in str(got)
    assert elapsed < 5
    # The session still reads an honest source afterwards (the adapter is requests' own
    # plus the deadline).
    with serve_in_thread(_hostile_node()) as honest:
        assert len(HttpLogReader(honest.url, session, timeout=5).entry_bundle(0)) > 0
