"""admin login throttle per (username, address)

Failed console logins were counted per username and per address in `rate_events`,
read before the password check and written after it: concurrent guesses all passed,
and either key locked out innocent admins. The new table holds one row per pair,
updated atomically before the check (issuer.admin.login_guard).

Revision ID: 0410_login_throttle
Revises: 0400_conversion_source
"""

import sqlalchemy as sa
from alembic import op

revision = "0410_login_throttle"
down_revision = "0400_conversion_source"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_login_throttle",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delay_s", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(
        "ix_admin_login_throttle_username", "admin_login_throttle", ["username"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_admin_login_throttle_username", table_name="admin_login_throttle")
    op.drop_table("admin_login_throttle")
