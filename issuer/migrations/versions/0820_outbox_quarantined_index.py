"""a partial index on the outbox's quarantined rows

Every Prometheus scrape counts the quarantined outbox rows (issuer.metrics), and the
console and the status API list them (issuer.anchor). Without an index each of those
read the whole outbox, which holds every anchor ever written (bench/metrics.py). The
index holds only the quarantined rows (a handful: each is an alarm), so it costs the
writers nothing.

Revision ID: 0820_outbox_quarantined_index
Revises: 0810_credentials_latest_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0820_outbox_quarantined_index"
down_revision = "0810_credentials_latest_index"
branch_labels = None
depends_on = None

_QUARANTINED = sa.text("quarantined_at IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_outbox_quarantined",
        "outbox",
        ["quarantined_at"],
        sqlite_where=_QUARANTINED,
        postgresql_where=_QUARANTINED,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_quarantined", table_name="outbox")
