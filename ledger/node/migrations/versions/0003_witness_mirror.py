"""Witness and mirror tables under Alembic: the witness's latest cosigned checkpoint per
origin and its fork evidence (C2SP tlog-witness), the validating mirror's leaves, tiles,
served checkpoints and re-derived revocation snapshots (C2SP tlog-mirror).

Nodes that ran joint operation before this revision created these tables themselves
(`create_all` at start-up); the revision adopts a table that already exists instead of
failing, so the same database upgrades in place.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = (
    "witness_latest",
    "witness_evidence",
    "mirror_leaf",
    "mirror_tile",
    "mirror_checkpoint",
    "mirror_revocation_snapshot",
)


def _create(existing: set[str], name: str, *columns: sa.Column[object]) -> None:
    if name not in existing:
        op.create_table(name, *columns)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    _create(
        existing,
        "witness_latest",
        sa.Column("origin", sa.String(255), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    _create(
        existing,
        "witness_evidence",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("origin", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("held_note", sa.LargeBinary, nullable=False),
        sa.Column("conflicting_note", sa.LargeBinary, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("detected_at", sa.BigInteger, nullable=False),
    )
    _create(
        existing,
        "mirror_leaf",
        sa.Column("origin", sa.String(255), primary_key=True),
        sa.Column("idx", sa.BigInteger, primary_key=True),
        sa.Column("leaf", sa.LargeBinary, nullable=False),
    )
    _create(
        existing,
        "mirror_tile",
        sa.Column("origin", sa.String(255), primary_key=True),
        sa.Column("level", sa.Integer, primary_key=True),
        sa.Column("idx", sa.BigInteger, primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    _create(
        existing,
        "mirror_checkpoint",
        sa.Column("origin", sa.String(255), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("note", sa.LargeBinary, nullable=False),
    )
    _create(
        existing,
        "mirror_revocation_snapshot",
        sa.Column("origin", sa.String(255), primary_key=True),
        sa.Column("digest", sa.LargeBinary(32), primary_key=True),
        sa.Column("tree_size", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
