"""index the outbox by (kind, ref)

A wallet's fetch of an unchanged credential looks up that credential's outbox row by
kind and status index (`issuance.reusable_credential`); without an index every fetch
scanned the whole outbox, which only grows.

Revision ID: 0300_outbox_ref
Revises: 0200_one_audit
"""

from alembic import op

revision = "0300_outbox_ref"
down_revision = "0200_one_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_kind_ref", "outbox", ["kind", "ref"])


def downgrade() -> None:
    op.drop_index("ix_outbox_kind_ref", table_name="outbox")
