"""The pure log primitives: RFC 9162 Merkle tree, C2SP signed notes,
checkpoints, cosignatures and tiles, typed entries and their rules, the revocation
snapshot format, the consortium file, the writer-auth signing input, the temporal
shard schedule, the error tree.
No I/O: nothing here imports sqlalchemy, requests, flask or sqlite3 (a test checks).
"""
