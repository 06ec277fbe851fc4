"""status indices from a sequence on PostgreSQL

Each issuance reserved its status indices with `UPDATE counters ... RETURNING`, whose
row lock lasted until the transaction committed: every issuance of the region, on every
issuer host, waited for the previous one's durable commit (issuer.issuance,
next_status_indices). A sequence hands out values without a lock that lasts; it starts
after the counter's value, so no index is ever handed out twice. SQLite (one writer at
a time) keeps the counter row.

Revision ID: 0830_status_index_sequence
Revises: 0820_outbox_quarantined_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0830_status_index_sequence"
down_revision = "0820_outbox_quarantined_index"
branch_labels = None
depends_on = None

SEQUENCE = "status_index_seq"
COUNTER = "status_index"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # The counter row is locked for the read, so no issuer still on the old code
    # reserves indices between this read and the sequence's start.
    value = bind.execute(
        sa.text("SELECT value FROM counters WHERE name = :n FOR UPDATE"), {"n": COUNTER}
    ).scalar()
    start = int(value or 0) + 1
    op.execute(sa.schema.CreateSequence(sa.Sequence(SEQUENCE, start=start, minvalue=1)))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # The counter continues after the last value the sequence handed out.
    last = bind.execute(
        sa.text(
            "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END"
            " FROM status_index_seq"
        )
    ).scalar()
    bind.execute(
        sa.text("UPDATE counters SET value = :v WHERE name = :n"),
        {"v": int(last or 0), "n": COUNTER},
    )
    op.execute(sa.schema.DropSequence(sa.Sequence(SEQUENCE)))
