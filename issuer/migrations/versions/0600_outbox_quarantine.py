"""outbox rows the ledger refused are quarantined

An entry the region's log refuses (it breaks a ledger rule) is set aside with the time
it was refused, so the rows submitted beside it are anchored at once instead of sharing
its retry schedule (issuer.anchor).

Revision ID: 0600_outbox_quarantine
Revises: 0500_admin_language
"""

import sqlalchemy as sa
from alembic import op

revision = "0600_outbox_quarantine"
down_revision = "0500_admin_language"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("quarantined_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "quarantined_at")
