"""Snapshots: the rules' log state every so many leaves (fast restart) and the
content-addressed revocation snapshots the checkpoints commit to (deltas survive a
restart).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Index64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "log_state_snapshots",
        sa.Column("size", Index64, primary_key=True, autoincrement=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "revocation_snapshots",
        sa.Column("digest", sa.LargeBinary(32), primary_key=True),
        sa.Column("tree_size", sa.BigInteger, nullable=False, index=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("revocation_snapshots")
    op.drop_table("log_state_snapshots")
