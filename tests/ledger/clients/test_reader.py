"""The one read interface over HTTP: every reader stops at a named limit, so a hostile
node or mirror cannot make an auditor, witness or station buffer an endless body."""

from __future__ import annotations

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
