"""outbox rows name the temporal shard of the region's log they go to

An anchor row carries the shard of its credential's expiry, a revocation or
reinstatement row the shard of the credential it names (issuer.sharding); the anchor
worker sends each run of rows to its shard (issuer.anchor). Rows written before this
revision, and key or audit entries, have none and go through the node's routing.

Revision ID: 0700_outbox_shard
Revises: 0600_outbox_quarantine
"""

import sqlalchemy as sa
from alembic import op

revision = "0700_outbox_shard"
down_revision = "0600_outbox_quarantine"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("shard", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "shard")
