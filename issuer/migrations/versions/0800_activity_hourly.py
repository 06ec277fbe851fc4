"""credentials issued and revoked per UTC hour, counted as they commit

The console's overview read a day of outbox rows on every view; it now reads these
counts (issuer.activity). The last day is counted from the outbox once, here, so the
overview shows the same figures right after the upgrade; older hours are never shown.
The day's first row is found by a binary search on the primary key (ids grow with
time), as the overview used to, so the upgrade reads one day of rows, not the table.

Revision ID: 0800_activity_hourly
Revises: 0700_outbox_shard
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0800_activity_hourly"
down_revision = "0700_outbox_shard"
branch_labels = None
depends_on = None

HOUR_S = 3600
BACKFILL_HOURS = 25  # the overview's day, and the hour it started in


def _first_id_from(conn: sa.Connection, t: int) -> int | None:
    lo, hi = conn.execute(sa.text("SELECT min(id), max(id) FROM outbox")).one()
    if lo is None:
        return None
    newest = conn.execute(
        sa.text("SELECT created_at FROM outbox WHERE id = :i"), {"i": hi}
    ).scalar()
    if newest is None or newest < t:
        return None
    lo, hi = int(lo), int(hi)
    probe = sa.text("SELECT id, created_at FROM outbox WHERE id >= :i ORDER BY id LIMIT 1")
    while lo < hi:
        row_id, created = conn.execute(probe, {"i": (lo + hi) // 2}).one()
        if created >= t:
            hi = int(row_id)
        else:
            lo = int(row_id) + 1
    return lo


def upgrade() -> None:
    op.create_table(
        "activity_hourly",
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "kind", "slot"),
    )
    conn = op.get_bind()
    now = int(time.time())
    since = now - now % HOUR_S - (BACKFILL_HOURS - 1) * HOUR_S
    first = _first_id_from(conn, since)
    if first is None:
        return
    conn.execute(
        sa.text(
            "INSERT INTO activity_hourly (hour, kind, slot, n) "
            "SELECT created_at - created_at % 3600, kind, 0, count(*) FROM outbox "
            "WHERE id >= :first AND created_at >= :since "
            "AND kind IN ('credential_anchored', 'credential_revoked') "
            "GROUP BY created_at - created_at % 3600, kind"
        ),
        {"first": first, "since": since},
    )


def downgrade() -> None:
    op.drop_table("activity_hourly")
