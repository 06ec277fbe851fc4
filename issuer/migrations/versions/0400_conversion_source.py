"""a converted holder names its source credential

`holders.source_status_index` (the source credential's status index in
`source_region`) goes into every credential issued to the holder as its `src` claim;
`holders.source_revoked_at` records when this issuer saw the source revoked on the
source region's log and revoked the holder's credentials.

Revision ID: 0400_conversion_source
Revises: 0300_outbox_ref
"""

import sqlalchemy as sa
from alembic import op

revision = "0400_conversion_source"
down_revision = "0300_outbox_ref"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("holders") as batch:
        batch.add_column(sa.Column("source_status_index", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("source_revoked_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("holders") as batch:
        batch.drop_column("source_revoked_at")
        batch.drop_column("source_status_index")
