"""a holder's latest active credential in one index descent

Every credential fetch reads the holder's latest active credential (max(id) of its
rows in state 'active'). By the index on holder_pk alone the database visited every
credential the holder was ever issued, and a daily re-issue adds one a day: a fetch
grew slower with the holder's history (measured: 106 heap pages and 1.3 ms of server
time at 126 credentials; docs/performance.md). The index on (holder_pk, state, id)
answers it in one descent; it also serves every lookup by holder_pk, so the old index
goes. On PostgreSQL both run CONCURRENTLY, outside a transaction, so a region's
issuers keep issuing while a large table is indexed.

Revision ID: 0810_credentials_latest_index
Revises: 0800_activity_hourly
"""

import sqlalchemy as sa
from alembic import op

revision = "0810_credentials_latest_index"
down_revision = "0800_activity_hourly"
branch_labels = None
depends_on = None

NEW = "ix_credentials_holder_state_id"
OLD = "ix_credentials_holder_pk"


# A CONCURRENTLY build that was interrupted (a restart, a lost connection) leaves an
# invalid index behind; it is dropped and built again on the next start.
_INVALID = sa.text(
    "SELECT 1 FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
    " WHERE c.relname = :name AND NOT i.indisvalid"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            if bind.execute(_INVALID, {"name": NEW}).first() is not None:
                op.drop_index(NEW, table_name="credentials", postgresql_concurrently=True)
            op.create_index(
                NEW,
                "credentials",
                ["holder_pk", "state", "id"],
                postgresql_concurrently=True,
                if_not_exists=True,
            )
            op.drop_index(
                OLD, table_name="credentials", postgresql_concurrently=True, if_exists=True
            )
    else:
        op.create_index(NEW, "credentials", ["holder_pk", "state", "id"])
        op.drop_index(OLD, table_name="credentials")


def downgrade() -> None:
    op.create_index(OLD, "credentials", ["holder_pk"])
    op.drop_index(NEW, table_name="credentials")
