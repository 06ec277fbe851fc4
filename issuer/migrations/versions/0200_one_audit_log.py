"""one admin audit log: drop the unchained audit_log table

Every admin action is recorded on the hash-chained `admin_audit` table (revision
0100_admin), written in the same transaction as the action by the service layer. The
older `audit_log` table duplicated the console's actions without a chain; it is no
longer written or read. Its rows are not carried over: those of console actions are
already on the chained log, and a chain cannot be extended with rows whose channel
and address were never recorded.

Revision ID: 0200_one_audit
Revises: 0100_admin
"""

import sqlalchemy as sa
from alembic import op

revision = "0200_one_audit"
down_revision = "0100_admin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("audit_log")


def downgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
