"""The credential store: canonical JSON round trip, mode 0600, damaged files refused."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from mobile_stub.errors import InsecurePermissionsError, StoreCorruptError
from mobile_stub.store import (
    FORMAT,
    STORE_FILE,
    MemoryStore,
    StatusSummary,
    StoredCredential,
    StoreFile,
    WalletDocument,
    parse_store,
    render_store,
)

JWS = "eyJhbGciOiJFUzI1NiJ9.cGF5bG9hZA.c2lnbmF0dXJl"


def entry(region: str = "GD", colour: str = "green") -> StoredCredential:
    return StoredCredential(
        region=region,
        holder_id=f"h-{region}",
        credential=JWS,
        issuer_url=f"http://127.0.0.1:1/{region}",
        status=StatusSummary(colour=colour, basis="vaccination", expires_at=1_900_000_000),
        updated_at=1_800_000_000,
    )


def test_store_round_trips_through_its_wire_format() -> None:
    doc = WalletDocument().with_entry(entry("GD")).with_entry(entry("MO", "yellow"))
    data = render_store(doc)
    assert parse_store(data) == doc
    assert render_store(parse_store(data)) == data
    assert doc.home == "GD"  # the first enrolment stays home


def test_memory_store_behaves_like_the_file() -> None:
    store = MemoryStore()
    assert store.load() == WalletDocument()
    doc = WalletDocument().with_entry(entry())
    store.save(doc)
    assert store.load() == doc


def test_store_file_is_written_with_mode_0600_and_no_leftovers(tmp_path: Path) -> None:
    store = StoreFile(tmp_path / "w")
    store.save(WalletDocument().with_entry(entry()))
    store.save(WalletDocument().with_entry(entry(colour="red")))
    path = tmp_path / "w" / STORE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "w").iterdir()] == [STORE_FILE]
    assert store.load().entries["GD"].status.colour == "red"


def test_missing_store_file_is_an_empty_wallet(tmp_path: Path) -> None:
    assert StoreFile(tmp_path).load() == WalletDocument()


def test_world_readable_store_is_refused(tmp_path: Path) -> None:
    store = StoreFile(tmp_path)
    store.save(WalletDocument().with_entry(entry()))
    (tmp_path / STORE_FILE).chmod(0o644)
    with pytest.raises(InsecurePermissionsError):
        store.load()


def good_json() -> dict:
    return json.loads(render_store(WalletDocument().with_entry(entry())))


def mutated(fn) -> bytes:
    obj = good_json()
    fn(obj)
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "not valid JSON"),
        (b"{trunc", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "format"),
        (mutated(lambda o: o.update(format="healthbridge-wallet/0")), "format"),
        (mutated(lambda o: o.update(home="MO")), "home region"),
        (mutated(lambda o: o.update(entries=[])), "entries"),
        (mutated(lambda o: o["entries"]["GD"].update(credential="not-a-jws")), "compact JWS"),
        (mutated(lambda o: o["entries"]["GD"].update(holder_id=7)), "holder_id"),
        (mutated(lambda o: o["entries"]["GD"].update(updated_at=True)), "updated_at"),
        (mutated(lambda o: o["entries"]["GD"]["status"].update(expires_at="soon")), "expires_at"),
        (mutated(lambda o: o["entries"]["GD"].update(status=None)), "status"),
        (b" " * (2 * 1024 * 1024), "at most"),
    ],
)
def test_damaged_store_is_refused_with_a_clear_error(data: bytes, needle: str) -> None:
    with pytest.raises(StoreCorruptError, match=needle):
        parse_store(data)


def test_damaged_store_file_is_refused_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILE
    path.write_bytes(b'{"format": "' + FORMAT.encode() + b'", "entries": 3}')
    path.chmod(0o600)
    with pytest.raises(StoreCorruptError):
        StoreFile(tmp_path).load()
    assert b'"entries": 3' in path.read_bytes()
