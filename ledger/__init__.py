"""The jointly run ledger: one transparency log per region, witnessed and mirrored by
every other region. Layers (docs/architecture.md): the pure log primitives, the node,
joint operation (witness, mirror), and the clients of a log (reader, submit, sync,
audit)."""
