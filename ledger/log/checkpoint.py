"""C2SP tlog-checkpoint@v1.0.0 bodies and tlog-cosignature@v1.0.1 witness cosignatures.

A checkpoint is the note text "<origin>\\n<size>\\n<base64 root>\\n[extension lines]";
`Checkpoint.parse` / `render` are exact inverses and refuse every non-canonical body.
A cosignature is a note signature of type 0x04 whose 72-byte body is a big-endian
u64 timestamp and an Ed25519 signature over "cosignature/v1\\ntime <t>\\n" followed by
the checkpoint body. `cosign` makes one, `CosignatureVerifier` checks one (also via
`ledger.log.note.open_note`), and `open_checkpoint` opens a log's signed checkpoint and
collects the cosignatures of known witnesses.

Not here: quorum policy (the consortium decides how many cosignatures it needs),
consistency between checkpoints (`ledger.log.merkle`), or any clock: a caller that wants
to refuse future timestamps compares the returned timestamp with its own time.
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature

from ledger.log.errors import (
    CheckpointError,
    CosignatureError,
    NoteError,
    NoteKeyError,
    NoteVerificationError,
)
from ledger.log.merkle import HASH_SIZE
from ledger.log.note import (
    ED25519_KEY_SIZE,
    ED25519_SIG_SIZE,
    NoteSignature,
    NoteSigner,
    SignedNote,
    Verifier,
    b64decode_strict,
    ed25519_public_key,
    key_id,
    open_note,
    parse_vkey,
    sign_note,
)

SIG_TYPE_COSIGNATURE_V1 = 0x04  # signed-note: timestamped Ed25519 witness cosignature
COSIGNATURE_HEADER = "cosignature/v1"  # tlog-cosignature "Signed message"
MAX_TIMESTAMP = (1 << 63) - 1  # seconds; tlog-cosignature: MUST NOT exceed 2^63 - 1
TIMESTAMPED_SIG_SIZE = 8 + ED25519_SIG_SIZE  # 72 bytes: u64 timestamp || signature
MAX_TREE_SIZE = (1 << 63) - 1  # leaves; what any deployed log can hold
_SIZE = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True)
class Checkpoint:
    """The body of a tlog-checkpoint: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise CheckpointError(f"expected a non-empty one-line origin, found {self.origin!r}")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"expected a tree size 0..2^63-1, found {self.size}")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(
                f"expected a {HASH_SIZE}-byte root hash, found {len(self.root_hash)} bytes"
            )
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise CheckpointError(f"expected non-empty one-line extensions, found {ext!r}")

    def render(self) -> str:
        root = base64.b64encode(self.root_hash).decode("ascii")
        return "".join(
            f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions)
        )

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body (the note text, final newline included)."""
        if not text.endswith("\n"):
            raise CheckpointError("expected a checkpoint ending in a newline, found none")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(f"expected at least 3 lines, found {len(lines)}")
        origin, size_text, root_text, *extensions = lines
        # tlog-checkpoint: ASCII decimal, no leading zeroes (unless the tree is empty).
        if not _SIZE.fullmatch(size_text):
            raise CheckpointError(f"expected a decimal tree size, found {size_text!r}")
        root = b64decode_strict(root_text, "the root hash", CheckpointError)
        checkpoint = cls(origin, int(size_text), root, tuple(extensions))
        if checkpoint.render() != text:
            raise CheckpointError("expected a canonical checkpoint body")
        return checkpoint


def cosignature_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    """The signed message of tlog-cosignature@v1.0.1 "Signed message"."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CosignatureError(f"expected a timestamp 0..2^63-1, found {timestamp}")
    return f"{COSIGNATURE_HEADER}\ntime {timestamp}\n{checkpoint.render()}".encode()


def cosigner_key_id(name: str, public_key: bytes) -> int:
    """SHA-256(name || 0x0A || 0x04 || public key)[:4] (tlog-cosignature "Format")."""
    return key_id(name, SIG_TYPE_COSIGNATURE_V1, public_key)


def cosignature_vkey(signer: NoteSigner) -> str:
    """The type 0x04 vkey a witness publishes for its cosignatures."""
    key = base64.b64encode(bytes([SIG_TYPE_COSIGNATURE_V1]) + signer.public_key).decode()
    return f"{signer.name}+{cosigner_key_id(signer.name, signer.public_key):08x}+{key}"


def cosignature(
    checkpoint: Checkpoint, witness_signer: NoteSigner, timestamp: int
) -> NoteSignature:
    """The structured cosignature of `checkpoint` at `timestamp` (seconds)."""
    msg = cosignature_message(checkpoint, timestamp)
    body = struct.pack(">Q", timestamp) + witness_signer.private_key.sign(msg)
    kid = cosigner_key_id(witness_signer.name, witness_signer.public_key)
    return NoteSignature(witness_signer.name, kid, body)


def cosign(checkpoint: Checkpoint, witness_signer: NoteSigner, timestamp: int) -> str:
    """The cosignature line ('— <name> <base64>\\n') of `checkpoint` at `timestamp`."""
    return cosignature(checkpoint, witness_signer, timestamp).render()


@dataclass(frozen=True)
class CosignatureVerifier:
    """A witness's cosigning key (type 0x04); also usable as a `note.Verifier`."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureVerifier:
        try:
            name, kid, sig_type, raw = parse_vkey(vkey)
        except NoteKeyError as e:
            raise CosignatureError(str(e)) from e
        if sig_type != SIG_TYPE_COSIGNATURE_V1:
            raise CosignatureError(f"expected signature type 0x04, found {sig_type:#04x}")
        if len(raw) != ED25519_KEY_SIZE:
            raise CosignatureError(f"expected a {ED25519_KEY_SIZE}-byte key, found {len(raw)}")
        if cosigner_key_id(name, raw) != kid:
            raise CosignatureError(
                f"expected key id {cosigner_key_id(name, raw):08x}, found {kid:08x}"
            )
        return cls(name, kid, raw)

    def vkey(self) -> str:
        key = base64.b64encode(bytes([SIG_TYPE_COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{key}"

    def timestamp_of(self, text: bytes, signature: bytes) -> int:
        """Verify a cosignature body over a checkpoint text; return its timestamp."""
        if len(signature) != TIMESTAMPED_SIG_SIZE:
            raise CosignatureError(
                f"expected a {TIMESTAMPED_SIG_SIZE}-byte timestamped signature by "
                f"{self.name}, found {len(signature)}"
            )
        (timestamp,) = struct.unpack(">Q", signature[:8])
        if timestamp > MAX_TIMESTAMP:
            raise CosignatureError(f"expected a timestamp below 2^63, found {timestamp}")
        try:
            checkpoint = Checkpoint.parse(text.decode("utf-8"))
        except (CheckpointError, UnicodeDecodeError) as e:
            raise CosignatureError("expected a checkpoint as the cosigned note text") from e
        msg = cosignature_message(checkpoint, timestamp)
        try:
            ed25519_public_key(self.public_key).verify(signature[8:], msg)
        except InvalidSignature as e:
            raise CosignatureError(f"cosignature by {self.name} does not verify") from e
        return int(timestamp)

    def verify(self, text: bytes, signature: bytes) -> None:
        try:
            self.timestamp_of(text, signature)
        except CosignatureError as e:
            raise NoteVerificationError(str(e)) from e


def verify_cosignature(
    checkpoint: Checkpoint, signature: NoteSignature | str, verifier: CosignatureVerifier
) -> int:
    """Check one cosignature (structured or as its line) and return its timestamp."""
    try:
        sig = NoteSignature.parse(signature) if isinstance(signature, str) else signature
    except NoteError as e:
        raise CosignatureError(f"expected a cosignature line: {e}") from e
    if (sig.name, sig.key_id) != (verifier.name, verifier.key_id):
        raise CosignatureError(
            f"expected a cosignature by {verifier.name}/{verifier.key_id:08x}, "
            f"found {sig.name}/{sig.key_id:08x}"
        )
    return verifier.timestamp_of(checkpoint.render().encode(), sig.signature)


def attach_signatures(signed_note: bytes, lines: Iterable[str | NoteSignature]) -> bytes:
    """The signed note with extra signature lines appended (duplicates dropped)."""
    note = SignedNote.parse(signed_note)
    added = [NoteSignature.parse(x) if isinstance(x, str) else x for x in lines]
    return note.with_signatures(*added).render()


@dataclass(frozen=True)
class OpenedCheckpoint:
    """A checkpoint whose log signature verified, with its verified cosignatures."""

    checkpoint: Checkpoint
    note: SignedNote
    cosignatures: dict[str, int]  # witness name -> cosignature timestamp (seconds)


def open_checkpoint(
    data: bytes, log_verifier: Verifier, witnesses: Sequence[CosignatureVerifier] = ()
) -> OpenedCheckpoint:
    """Open a signed checkpoint: the log's signature must verify; every cosignature by a
    known witness must verify too (a bad one rejects the note, as signed-note asks);
    unknown signatures are ignored."""
    try:
        note = open_note(data, [log_verifier])
    except NoteError as e:
        raise CheckpointError(f"log signature by {log_verifier.name}: {e}") from e
    checkpoint = Checkpoint.parse(note.text)
    cosigs: dict[str, int] = {}
    raw = note.text.encode("utf-8")
    known = {(w.name, w.key_id): w for w in witnesses}
    for sig in note.signatures:
        witness = known.get((sig.name, sig.key_id))
        if witness is None:
            continue
        if sig.name in cosigs:
            raise CosignatureError(f"expected one cosignature by {sig.name}, found several")
        cosigs[sig.name] = witness.timestamp_of(raw, sig.signature)
    return OpenedCheckpoint(checkpoint, note, cosigs)


def signed_checkpoint(checkpoint: Checkpoint, log_signer: NoteSigner) -> bytes:
    """The log's signed note of `checkpoint` (Ed25519, tlog-tiles "Checkpoints")."""
    return sign_note(checkpoint.render(), [log_signer])


def best_cosigned(
    held: bytes | None,
    offered: bytes,
    log_verifier: Verifier,
    witnesses: Sequence[CosignatureVerifier],
) -> bytes | None:
    """What a mirror should serve instead of `held` when `offered` arrives, or None when
    `offered` would add nothing (C2SP tlog-mirror serves the log's latest checkpoint).

    A larger tree wins. For the same tree, the answer keeps the log's signature and, per
    known witness, its newest valid cosignature from either note: a replayed or stripped
    note never removes a cosignature or makes one older, and unknown signature lines are
    dropped. A smaller tree, or another root for the same size, is never served instead.
    `offered` must open (log signature and every known cosignature valid), else this
    raises; `held` was opened when it was stored."""
    new = open_checkpoint(offered, log_verifier, witnesses)
    if held is None:
        return _known_only(new, log_verifier, {})
    old = open_checkpoint(held, log_verifier, witnesses)
    if new.checkpoint.size != old.checkpoint.size:
        if new.checkpoint.size < old.checkpoint.size:
            return None
        return _known_only(new, log_verifier, {})
    if new.checkpoint.root_hash != old.checkpoint.root_hash:
        return None  # a fork is the witness's business (evidence), never served
    if new.note.text != old.note.text:
        # Same tree, other text: cosignatures of one text never carry over to the other.
        # A note whose extension lines strictly extend the held one's (a temporal
        # shard's final checkpoint adds the frozen line, ledger.log.shards) replaces
        # it; any other variant changes nothing.
        if set(old.checkpoint.extensions) < set(new.checkpoint.extensions):
            return _known_only(new, log_verifier, {})
        return None
    newest = dict(old.cosignatures)
    picked = {s.name: s for s in old.note.signatures if s.name in old.cosignatures}
    for sig in new.note.signatures:
        ts = new.cosignatures.get(sig.name)
        if ts is not None and ts > newest.get(sig.name, -1):
            newest[sig.name] = ts
            picked[sig.name] = sig
    merged = _known_only(old, log_verifier, picked)
    return None if merged == held else merged


def _known_only(
    opened: OpenedCheckpoint, log_verifier: Verifier, cosigs: dict[str, NoteSignature]
) -> bytes:
    """The note with only the log's signature and the given (else its own) cosignatures,
    in witness-name order."""
    log_sig = [
        s for s in opened.note.signatures if (s.name, s.key_id) == (log_verifier.name,
                                                                     log_verifier.key_id)
    ]  # fmt: skip
    if not cosigs:
        cosigs = {s.name: s for s in opened.note.signatures if s.name in opened.cosignatures}
    ordered = [cosigs[name] for name in sorted(cosigs)]
    return SignedNote(opened.note.text, (*log_sig[:1], *ordered)).render()
