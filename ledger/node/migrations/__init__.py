"""Alembic migrations of the ledger node's tables, runnable from an installed package.

What it does: builds the Alembic configuration in code (no alembic.ini needed: the
script location is this package's folder) and upgrades a database to head. The version
table is `ledger_alembic_version` so the ledger can share a database with other
components. What it does not: it never downgrades on its own.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ledger.log.errors import StorageError

HERE = Path(__file__).resolve().parent


class MigrationError(StorageError):
    """The database could not be brought to the schema this code expects."""


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_table", "ledger_alembic_version")
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def upgrade_head(engine: Engine) -> None:
    """Run every pending migration on the database behind `engine`."""
    try:
        command.upgrade(alembic_config(engine), "head")
    except SQLAlchemyError as e:
        raise MigrationError(f"migrating the ledger database failed: {e}") from e


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as c:
        ctx = MigrationContext.configure(c, opts={"version_table": "ledger_alembic_version"})
        return ctx.get_current_revision()
