"""Staged entries are trusted no more than fresh ones (ledger.clients.sync `_stage`),
against in-memory sources: entries checked against the tiles of an earlier tree stay
valid as a prefix when the checkpoint moves on; entries staged with no record of the
tree they were checked against (by a client that did not check bundles as they
arrived) are fetched again, never taken over; and a source that no longer has a
partial tile of the checkpoint's tree is asked for the full one (C2SP tlog-tiles,
"Partial Tiles")."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from credential.keys import generate_private_key, key_id, public_key_der
from ledger.clients.reader import HttpAnswer, LogNotFoundError
from ledger.clients.sync import RegionStatus, SourceError, SyncClient, SyncedTrustState
from ledger.log.entries import CredentialAnchored
from tests.support.ledger_joint import (
    MemberKeys,
    MemoryLog,
    MemorySource,
    consortium_of,
    key_added,
    leaf_of,
    member_keys,
)

NOW = 1_700_000_100


def _leaves(gd: MemberKeys, n: int, salt: int = 0) -> list[bytes]:
    issuer = generate_private_key()
    kid = key_id(public_key_der(issuer))
    return [leaf_of(key_added(gd, issuer))] + [
        leaf_of(CredentialAnchored("GD", (i + salt).to_bytes(32, "big"), i, kid, 1_800_000_000))
        for i in range(1, n)
    ]


@dataclass
class CutSource(MemorySource):
    """Fails every entry bundle from `cut_at` on (a reset connection)."""

    cut_at: int = 10**9

    def entry_bundle(self, index: int, width: int) -> bytes:
        if index >= self.cut_at:
            raise SourceError("connection reset")
        return super().entry_bundle(index, width)


@dataclass
class NoPartialTiles(MemorySource):
    """Has deleted its partial tiles: 404 for any `.p/<W>` a full tile exists for."""

    full_tiles_served: int = 0

    def tile(self, level: int, index: int, width: int = 256) -> bytes:
        try:
            whole = super().tile(level, index, 256)
        except SourceError:
            return super().tile(level, index, width)  # still partial here: served
        if width < 256:
            raise LogNotFoundError(f"{self.name}: no partial tile", HttpAnswer(404, {}, b""))
        self.full_tiles_served += 1
        return whole


def _client(tmp_path: Path, gd: MemberKeys, mo: MemberKeys, sources) -> SyncClient:
    return SyncClient(consortium_of(gd, mo), tmp_path / "state.db",
                      sources=lambda r: sources[r], clock=lambda: NOW)  # fmt: skip


def test_entries_checked_against_an_earlier_tree_are_kept_when_the_checkpoint_moves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gd, mo = member_keys("GD"), member_keys("MO")
    leaves = _leaves(gd, 12 * 256)
    log = MemoryLog(gd, leaves[: 8 * 256 + 10])
    node = CutSource(log, [gd, mo], name="GD-node", cut_at=5)
    sources = {"GD": [node], "MO": [MemorySource(MemoryLog(mo), [gd, mo])]}
    client = _client(tmp_path, gd, mo, sources)
    first = client.sync("GD").region("GD")
    assert first.status is RegionStatus.FAILED and node.bundle_calls == 5
    held = (
        sqlite3.connect(tmp_path / "state.db")
        .execute("SELECT size FROM staged_tree WHERE region = 'GD'")
        .fetchone()
    )
    assert held == (8 * 256 + 10,)  # the tree the five staged bundles were checked against
    # The log grows; the next pass syncs the bigger tree and takes the five bundles
    # over: the witnesses cosigned it as an extension of the earlier one, and the
    # root check at the end proves it.
    log.leaves[:] = leaves
    node.cut_at, node.bundle_calls = 10**9, 0
    caplog.set_level(logging.INFO)
    second = client.sync("GD").region("GD")
    assert second.status is RegionStatus.UPDATED and second.new_size == 12 * 256
    assert node.bundle_calls == 12 - 5
    assert "refetching" not in caplog.text
    assert SyncedTrustState(tmp_path / "state.db").tree_size("GD") == 12 * 256


def test_entries_staged_without_a_checked_tree_are_fetched_again_not_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gd, mo = member_keys("GD"), member_keys("MO")
    leaves = _leaves(gd, 4 * 256)
    node = MemorySource(MemoryLog(gd, leaves), [gd, mo], name="GD-node")
    sources = {"GD": [node], "MO": [MemorySource(MemoryLog(mo), [gd, mo])]}
    client = _client(tmp_path, gd, mo, sources)
    # Wrong entries staged by a client that did not check them as they arrived: no
    # row in `staged_tree` says what they were checked against.
    wrong = _leaves(gd, 2 * 256, salt=7)
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.executemany("INSERT INTO staged VALUES ('GD', ?, ?)", list(enumerate(wrong)))
    caplog.set_level(logging.INFO)
    report = client.sync("GD").region("GD")
    assert report.status is RegionStatus.UPDATED and report.new_size == 4 * 256
    assert node.bundle_calls == 4  # all fetched, once: the unchecked rows were dropped
    assert "refetching" not in caplog.text


def test_a_source_without_partial_tiles_is_asked_for_the_full_tile_cut_to_width(
    tmp_path: Path,
) -> None:
    gd, mo = member_keys("GD"), member_keys("MO")
    leaves = _leaves(gd, 3 * 256 + 40)
    # The checkpoint is of 2 bundles + 100 entries; the source's tree has grown past
    # it, so the partial level-0 tile of the checkpoint's tree is full on the source.
    cp_size = 2 * 256 + 100
    full = MemoryLog(gd, leaves)

    @dataclass
    class Lagging(NoPartialTiles):
        def checkpoint(self) -> bytes:
            saved = self.log.leaves
            self.log = MemoryLog(gd, saved[:cp_size])
            try:
                return super().checkpoint()
            finally:
                self.log = MemoryLog(gd, saved)

    source = Lagging(full, [gd, mo], name="GD-node")
    sources = {"GD": [source], "MO": [MemorySource(MemoryLog(mo), [gd, mo])]}
    report = _client(tmp_path, gd, mo, sources).sync("GD").region("GD")
    assert report.status is RegionStatus.UPDATED and report.new_size == cp_size, report.errors
    assert source.full_tiles_served == 1  # level-0 tile 2, cut to the checkpoint's 100
