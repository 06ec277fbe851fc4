"""each admin's console language

The console speaks English, Simplified Chinese, Traditional Chinese or Portuguese; an
admin's choice is kept with the account (NULL: follow the browser's Accept-Language).

Revision ID: 0500_admin_language
Revises: 0410_login_throttle
"""

import sqlalchemy as sa
from alembic import op

revision = "0500_admin_language"
down_revision = "0410_login_throttle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("admin_accounts") as batch:
        batch.add_column(sa.Column("language", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("admin_accounts") as batch:
        batch.drop_column("language")
