"""Alembic environment for the issuer database: runs on the connection handed in by
issuer.db.migrate (online mode only)."""

from __future__ import annotations

from alembic import context

from issuer.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
