"""Every ledger table is under the node's Alembic history: the migrated schema equals the
tables the code declares (node, witness, mirror), on SQLite and PostgreSQL, and a
database whose witness and mirror tables were made before they had a revision upgrades
in place."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from common.db import make_engine
from ledger.joint import mirror, witness
from ledger.node.migrations import alembic_config, current_revision, upgrade_head
from ledger.node.storage import Base

VERSION_TABLE = "ledger_alembic_version"


def _declared() -> list[sa.MetaData]:
    return [Base.metadata, witness.metadata, mirror.metadata]


def _diff(engine: sa.Engine) -> list[object]:
    out: list[object] = []
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "version_table": VERSION_TABLE,
                "include_name": lambda name, type_, _parent: name != VERSION_TABLE,
            },
        )
        for md in _declared():
            names = set(md.tables)
            diff = compare_metadata(ctx, md)
            # Each MetaData is compared alone: the others' tables (and their indexes)
            # show as removed.
            out += [d for d in diff if not _elsewhere(d, names)]
    return out


def _elsewhere(d: object, names: set[str]) -> bool:
    if not isinstance(d, tuple) or d[0] not in ("remove_table", "remove_index"):
        return False
    table = d[1] if d[0] == "remove_table" else d[1].table
    return table.name not in names


def check(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade_head(engine)
        assert current_revision(engine) == "0003"
        assert _diff(engine) == []
    finally:
        engine.dispose()


def test_migrated_schema_is_every_declared_table_on_sqlite(tmp_path: Path) -> None:
    check(f"sqlite:///{tmp_path / 'ledger.db'}")


@pytest.mark.postgres
def test_migrated_schema_is_every_declared_table_on_postgres(fresh_postgres_url: str) -> None:
    check(fresh_postgres_url)


def test_witness_tables_made_before_their_revision_upgrade_in_place(tmp_path: Path) -> None:
    # A node that ran joint operation before revision 0003: its witness and mirror tables
    # came from create_all, its Alembic history stops at 0002, and it holds state.
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(alembic_config(engine), "0002")
    witness.metadata.create_all(engine)
    mirror.metadata.create_all(engine)
    with engine.begin() as c:
        c.execute(
            witness.latest_table.insert().values(
                origin="gd.example/log", size=3, root_hash=b"\x01" * 32, note=b"n", updated_at=1
            )
        )
    upgrade_head(engine)
    assert current_revision(engine) == "0003"
    with engine.connect() as c:
        assert c.execute(sa.select(witness.latest_table.c.size)).scalar_one() == 3
    assert _diff(engine) == []
    engine.dispose()
