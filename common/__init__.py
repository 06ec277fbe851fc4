"""The few primitives every HealthBridge package shares, each with exactly one home.

`common.b64` (base64url, RFC 4648 §5) is pure; `common.secret_file` (0600 files),
`common.db` (the SQLAlchemy engine factory) and `common.serving` (a WSGI app on a
thread) do I/O. This package imports nothing of ours, so `credential`, `ledger`,
`issuer`, `verifier`, `mobile_stub` and `healthbridge` may all depend on it. Importing
the package itself imports none of its modules: the pure core pulls in only `b64`.
"""
