"""The ledger package's exception tree: one root, one class per kind of failure.

Every failure of the pure core (Merkle proofs, tiles, notes, checkpoints, entries,
rules) raises a subclass of `LedgerError`; messages say what was expected and what
was found. Foreign exceptions (base64, cryptography, struct) are wrapped at the
boundary with `raise ... from e`. The rules engine's `RuleViolationError` lives in
`ledger.log.rules` next to its `Rule` codes and also derives from `LedgerError`.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error raised by the ledger package."""


class MerkleError(LedgerError, ValueError):
    """A Merkle tree computation got impossible arguments (index past the size, ...)."""


class InclusionProofError(MerkleError):
    """An inclusion proof does not prove the leaf under the given root (RFC 9162 §2.1.3.2)."""


class ConsistencyProofError(MerkleError):
    """A consistency proof does not link the two tree heads (RFC 9162 §2.1.4.2)."""


class TileError(LedgerError, ValueError):
    """A tile or entry bundle path, body or read is malformed or inconsistent."""


class NoteError(LedgerError, ValueError):
    """A signed note could not be parsed, rendered or verified."""


class NoteFormatError(NoteError):
    """The note bytes do not follow C2SP signed-note@v1.0.0."""


class NoteKeyError(NoteError):
    """A signer key (skey) or verifier key (vkey) is malformed or inconsistent."""


class NoteVerificationError(NoteError):
    """A known key's signature fails, or no known key signed the note."""


class CheckpointError(LedgerError, ValueError):
    """A checkpoint body does not follow C2SP tlog-checkpoint@v1.0.0."""


class CosignatureError(LedgerError, ValueError):
    """A cosignature is malformed or does not verify (C2SP tlog-cosignature@v1.0.1)."""


class StorageError(LedgerError):
    """The database refused or failed an operation (wrapped driver error)."""


class EntryError(LedgerError, ValueError):
    """A log entry or timestamped leaf is malformed, non-canonical or invalid."""


class TileMismatchError(TileError):
    """A hash tile or entry bundle is well formed but not part of the checkpoint's tree
    (C2SP tlog-tiles; `ledger.log.tree_tiles`)."""
