"""Storage of the ledger node on SQLite (WAL) and PostgreSQL: migrations, atomic batches,
the writer fence, immutable full tiles and one checkpoint per size."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from ledger.log import tiles
from ledger.log.merkle import leaf_hash, root_hash
from ledger.node.migrations import current_revision
from ledger.node.storage import (
    FULL_TILE_BYTES,
    ConcurrentWriterError,
    NewLeaf,
    StorageError,
    Store,
    TreeState,
    open_store,
)


def _leaves(start: int, n: int) -> list[NewLeaf]:
    out = []
    for i in range(start, start + n):
        leaf = f"leaf {i}".encode()
        out.append(NewLeaf(i, hashlib.sha256(b"entry %d" % i).digest(), leaf))
    return out


def _append(store: Store, n: int, note: bytes = b"note") -> TreeState:
    old = store.tree_state()
    new = _leaves(old.size, n)
    changed = tiles.append_leaves(old.size, [leaf_hash(x.leaf) for x in new], store)
    overlay = {**{k: store.read_tile(*k) for k in []}, **changed}

    class R:
        def read_tile(self, level: int, index: int) -> bytes:
            return overlay.get((level, index)) or store.read_tile(level, index)

    size = old.size + n
    state = TreeState(size, tiles.tree_root(size, R()), 1)
    store.commit_batch(old.size, new, changed, state, note + b" %d" % size, 1)
    return state


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    s = open_store(url)
    request.addfinalizer(s.dispose)
    return s


def test_migrations_reach_head_and_reopen_is_a_no_op(store: Store) -> None:
    assert current_revision(store.engine) == "0003"
    again = open_store(store.engine.url.render_as_string(hide_password=False))
    assert current_revision(again.engine) == "0003"
    again.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    with s.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    s.dispose()


def test_sqlite_commits_are_fsynced_before_a_checkpoint_is_signed(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    with s.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    s.dispose()


@pytest.mark.postgres
def test_postgres_commits_are_durable_even_when_the_server_default_is_off(
    fresh_postgres_url: str,
) -> None:
    name = fresh_postgres_url.rsplit("/", 1)[1]
    admin = sa.create_engine(fresh_postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    admin.dispose()
    s = open_store(fresh_postgres_url)
    with s.engine.connect() as c:
        assert c.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    s.dispose()


def test_batches_across_tile_boundaries_give_the_rfc9162_root(store: Store) -> None:
    sizes = [1, 254, 2, 300, 256 * 3]
    for n in sizes:
        state = _append(store, n)
    total = sum(sizes)
    expected = root_hash([leaf_hash(f"leaf {i}".encode()) for i in range(total)])
    assert state.root_hash == expected
    assert store.tree_state() == state
    assert tiles.tree_root(total, store) == expected
    assert store.leaves(0, 3) == [b"leaf 0", b"leaf 1", b"leaf 2"]


def test_full_tiles_are_never_rewritten(store: Store) -> None:
    _append(store, 256)
    full = store.read_tile(0, 0)
    assert len(full) == FULL_TILE_BYTES
    # A buggy writer tries to widen tile 0/0 again: the update guard leaves it alone.
    with store.engine.begin() as c:
        c.execute(sa.text("UPDATE tree_state SET size = size"))
    bogus = {(0, 0): b"\x00" * FULL_TILE_BYTES}
    state = store.tree_state()
    new = _leaves(256, 1)
    store.commit_batch(
        256,
        new,
        {**bogus, (0, 1): leaf_hash(b"leaf 256")},
        TreeState(257, b"\x01" * 32, 2),
        b"n",
        2,
    )
    assert store.read_tile(0, 0) == full
    assert state.size == 256


def test_second_writer_on_a_moved_tree_is_fenced_off(store: Store) -> None:
    _append(store, 3)
    with pytest.raises(ConcurrentWriterError):
        store.commit_batch(1, _leaves(1, 2), {}, TreeState(3, b"\x02" * 32, 1), b"x", 1)
    assert store.tree_state().size == 3


def test_failed_batch_leaves_nothing_behind(store: Store) -> None:
    _append(store, 2)
    dup = NewLeaf(2, hashlib.sha256(b"entry 0").digest(), b"dup")  # same dedupe hash
    with pytest.raises(StorageError):
        store.commit_batch(2, [dup], {}, TreeState(3, b"\x03" * 32, 1), b"y", 1)
    assert store.tree_state().size == 2
    assert store.leaves(0, 10) == [b"leaf 0", b"leaf 1"]
    assert store.checkpoint(3) is None


def test_one_checkpoint_per_size_even_when_asked_twice(store: Store) -> None:
    _append(store, 5, note=b"first")
    assert store.checkpoint(5) is not None
    assert store.add_checkpoint_if_absent(5, b"different", 9) is False
    cp = store.checkpoint(5)
    assert cp is not None and cp.note == b"first 5"


def test_cosignature_lines_are_served_after_the_note(store: Store) -> None:
    _append(store, 1, note=b"log\n\n\xe2\x80\x94 log abc\n")
    store.set_cosignatures(1, ["\u2014 witness xyz"])
    cp = store.latest_checkpoint()
    assert cp is not None
    assert cp.served().endswith("\u2014 witness xyz\n".encode())


def test_dedupe_lookup_finds_existing_indices(store: Store) -> None:
    _append(store, 4)
    h1 = hashlib.sha256(b"entry 1").digest()
    found = store.find_indices([h1, b"\x00" * 32])
    assert found == {h1: 1}


def test_unreachable_database_is_a_typed_error() -> None:
    with pytest.raises(StorageError):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
