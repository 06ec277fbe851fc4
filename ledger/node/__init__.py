"""One region's ledger node: SQL storage and its Alembic migrations, the
single sequencer, the HTTP app (submissions, tlog-tiles read API, proofs), revocation
snapshots and configuration. ledger.serving assembles it with joint operation.
"""
