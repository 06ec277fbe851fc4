"""Initial ledger tables: entries, tiles, checkpoints, tree_state.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# INTEGER on SQLite makes the key the rowid (no second index); BIGINT elsewhere.
Index64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "entries",
        sa.Column("idx", Index64, primary_key=True, autoincrement=False),
        sa.Column("entry_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("leaf", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("entry_hash", name="uq_entries_entry_hash"),
    )
    op.create_table(
        "tiles",
        sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "checkpoints",
        sa.Column("size", Index64, primary_key=True, autoincrement=False),
        sa.Column("note", sa.LargeBinary, nullable=False),
        sa.Column("cosignatures", sa.Text, nullable=False, server_default=""),
        sa.Column("signed_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "tree_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("last_timestamp_ms", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_tree_state_single_row"),
    )


def downgrade() -> None:
    for table in ("tree_state", "checkpoints", "tiles", "entries"):
        op.drop_table(table)
