"""C2SP signed-note@v1.0.0 with Ed25519 (signature type 0x01) keys.

Parses and renders signed notes byte for byte, reads and writes signer keys
(`PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>`) and verifier keys
(`<name>+<id>+<base64(0x01 || public key)>`), signs notes and opens them against a
set of trusted verifiers. Opening follows the spec: unknown signatures are ignored,
a known key whose signature fails rejects the whole note, and a note that no known
key signed is rejected.

Verification goes through the small `Verifier` protocol, so that the timestamped
witness cosignatures of `ledger.log.checkpoint` (type 0x04) open through the same code.
This module does not interpret the note text (see `ledger.log.checkpoint`) and keeps no
key on disk (callers read skeys from 0600 files).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.log.errors import NoteFormatError, NoteKeyError, NoteVerificationError

SIG_TYPE_ED25519 = 0x01  # signed-note "Signature types"
ED25519_KEY_SIZE = 32  # bytes (RFC 8032 public key and seed)
ED25519_SIG_SIZE = 64  # bytes (RFC 8032)
KEY_ID_SIZE = 4  # bytes, big-endian uint32 in front of every signature
MAX_NOTE_BYTES = 1 << 20  # bytes; generous for 16+ post-quantum signatures
MAX_SIGNATURES = 64  # signature lines; the spec asks verifiers to accept at least 16
SIG_PREFIX = "— "  # em dash U+2014 and a space
_SKEY_PREFIX = "PRIVATE+KEY+"


def b64decode_strict(text: str, what: str, error: type[Exception]) -> bytes:
    """Standard base64 (RFC 4648 §4) with padding; refuses any other spelling."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise error(f"expected standard base64 for {what}, found {text[:40]!r}") from e
    if base64.b64encode(raw).decode("ascii") != text:
        raise error(f"expected canonical base64 for {what}, found {text[:40]!r}")
    return raw


def check_key_name(name: str) -> None:
    """Key names are non-empty, without Unicode spaces or '+' (signed-note "Format")."""
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteKeyError(f"expected a key name without spaces or '+', found {name!r}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise NoteKeyError(f"expected a key name without control characters, found {name!r}")


def key_id(name: str, sig_type: int, public_key: bytes) -> int:
    """SHA-256(name || 0x0A || type || public key)[:4] as a uint32 (signed-note)."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key)
    return int.from_bytes(digest.digest()[:KEY_ID_SIZE], "big")


def parse_vkey(vkey: str) -> tuple[str, int, int, bytes]:
    """Split a verifier key into (name, key id, signature type, key material)."""
    # The name holds no '+', but the base64 key may: split on the first two only.
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise NoteKeyError(f"expected a vkey '<name>+<id>+<key>', found {len(parts)} parts")
    name, id_hex, key_b64 = parts
    check_key_name(name)
    if len(id_hex) != 2 * KEY_ID_SIZE or any(c not in "0123456789abcdef" for c in id_hex):
        raise NoteKeyError(f"expected an 8-digit lowercase hex key id, found {id_hex!r}")
    raw = b64decode_strict(key_b64, "the vkey", NoteKeyError)
    if not raw:
        raise NoteKeyError("expected a signature type and key in the vkey, found nothing")
    return name, int(id_hex, 16), raw[0], raw[1:]


def ed25519_public_key(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != ED25519_KEY_SIZE:
        raise NoteKeyError(f"expected a {ED25519_KEY_SIZE}-byte Ed25519 key, found {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_bytes(key: Ed25519PublicKey) -> bytes:
    """The 32-byte RFC 8032 encoding of an Ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class Verifier(Protocol):
    """A trusted key as the note sees it: name, key id, and a check of one signature."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, text: bytes, signature: bytes) -> None:
        """Raise `NoteVerificationError` unless `signature` (without the 4-byte key id)
        signs the note `text` for this key."""
        ...


@dataclass(frozen=True)
class NoteVerifier:
    """An Ed25519 (type 0x01) signed-note verifier key."""

    name: str
    key_id: int
    public_key: bytes  # 32 bytes

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        name, kid, sig_type, raw = parse_vkey(vkey)
        if sig_type != SIG_TYPE_ED25519:
            raise NoteKeyError(f"expected signature type 0x01 (Ed25519), found {sig_type:#04x}")
        ed25519_public_key(raw)
        if key_id(name, sig_type, raw) != kid:
            raise NoteKeyError(
                f"expected key id {key_id(name, sig_type, raw):08x}, found {kid:08x}"
            )
        return cls(name, kid, raw)

    def vkey(self) -> str:
        key = base64.b64encode(bytes([SIG_TYPE_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{key}"

    def verify(self, text: bytes, signature: bytes) -> None:
        if len(signature) != ED25519_SIG_SIZE:
            raise NoteVerificationError(
                f"expected a {ED25519_SIG_SIZE}-byte signature by {self.name}, "
                f"found {len(signature)}"
            )
        try:
            ed25519_public_key(self.public_key).verify(signature, text)
        except InvalidSignature as e:
            raise NoteVerificationError(f"signature by {self.name} does not verify") from e


@dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 (type 0x01) signed-note signer key."""

    name: str
    private_key: Ed25519PrivateKey = field(repr=False, compare=False)

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        if not skey.startswith(_SKEY_PREFIX):
            raise NoteKeyError("expected an skey starting with 'PRIVATE+KEY+'")
        name, kid, sig_type, raw = parse_vkey(skey.removeprefix(_SKEY_PREFIX))
        if sig_type != SIG_TYPE_ED25519:
            raise NoteKeyError(f"expected signature type 0x01 (Ed25519), found {sig_type:#04x}")
        if len(raw) != ED25519_KEY_SIZE:
            raise NoteKeyError(f"expected a {ED25519_KEY_SIZE}-byte seed, found {len(raw)}")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw))
        if signer.key_id != kid:
            raise NoteKeyError(f"expected key id {signer.key_id:08x}, found {kid:08x}")
        return signer

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> NoteSigner:
        check_key_name(name)
        if len(seed) != ED25519_KEY_SIZE:
            raise NoteKeyError(f"expected a {ED25519_KEY_SIZE}-byte seed, found {len(seed)}")
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def generate(cls, name: str) -> tuple[str, str]:
        """A fresh key pair as (skey, vkey) text."""
        check_key_name(name)
        signer = cls(name, Ed25519PrivateKey.generate())
        return signer.skey(), signer.verifier().vkey()

    @property
    def public_key(self) -> bytes:
        return public_bytes(self.private_key.public_key())

    @property
    def key_id(self) -> int:
        return key_id(self.name, SIG_TYPE_ED25519, self.public_key)

    def skey(self) -> str:
        seed = self.private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        key = base64.b64encode(bytes([SIG_TYPE_ED25519]) + seed).decode()
        return f"{_SKEY_PREFIX}{self.name}+{self.key_id:08x}+{key}"

    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.key_id, self.public_key)

    def sign(self, text: bytes) -> bytes:
        """The raw Ed25519 signature over the note text (deterministic, RFC 8032)."""
        return self.private_key.sign(text)


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key id, signature bytes (without the key id)."""

    name: str
    key_id: int
    signature: bytes

    def render(self) -> str:
        blob = struct.pack(">I", self.key_id) + self.signature
        return f"{SIG_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"

    @classmethod
    def parse(cls, line: str) -> NoteSignature:
        """Parse one line (with or without its final newline)."""
        body = line.removesuffix("\n")
        if not body.startswith(SIG_PREFIX):
            raise NoteFormatError(
                f"expected a signature line starting with '— ', found {body[:20]!r}"
            )
        fields = body[len(SIG_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise NoteFormatError(f"expected '— <name> <signature>', found {len(fields)} fields")
        name, sig_b64 = fields
        try:
            check_key_name(name)
        except NoteKeyError as e:
            raise NoteFormatError(str(e)) from e
        blob = b64decode_strict(sig_b64, f"the signature by {name}", NoteFormatError)
        if len(blob) <= KEY_ID_SIZE:
            raise NoteFormatError(f"expected a key id and a signature, found {len(blob)} bytes")
        (kid,) = struct.unpack(">I", blob[:KEY_ID_SIZE])
        return cls(name, kid, blob[KEY_ID_SIZE:])


def check_text(text: str) -> None:
    """Note text rules: ends in a newline, no control characters but newline."""
    if not text.endswith("\n"):
        raise NoteFormatError("expected note text ending in a newline, found none")
    bad = next((c for c in text if (ord(c) < 0x20 and c != "\n") or ord(c) == 0x7F), None)
    if bad is not None:
        raise NoteFormatError(f"expected no control characters in the note, found {bad!r}")


@dataclass(frozen=True)
class SignedNote:
    """A note text and its signature lines. `verified` lists, after `open_note`, the
    signatures that were checked against trusted keys (not part of equality)."""

    text: str
    signatures: tuple[NoteSignature, ...]
    verified: tuple[NoteSignature, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, data: bytes) -> SignedNote:
        if len(data) > MAX_NOTE_BYTES:
            raise NoteFormatError(
                f"expected a note of at most {MAX_NOTE_BYTES} bytes, found {len(data)}"
            )
        try:
            whole = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise NoteFormatError("expected a UTF-8 note, found invalid UTF-8") from e
        check_text(whole)
        # The text is separated from the signatures by the *last* empty line.
        cut = whole.rfind("\n\n")
        if cut < 0:
            raise NoteFormatError("expected a blank line before the signatures, found none")
        text, sig_block = whole[: cut + 1], whole[cut + 2 :]
        lines = sig_block.split("\n")[:-1]  # sig_block ends with "\n" (checked above)
        if not lines:
            raise NoteFormatError("expected at least one signature line, found none")
        if len(lines) > MAX_SIGNATURES:
            raise NoteFormatError(
                f"expected at most {MAX_SIGNATURES} signatures, found {len(lines)}"
            )
        return cls(text, tuple(NoteSignature.parse(line) for line in lines))

    def render(self) -> bytes:
        check_text(self.text)
        if not self.signatures:
            raise NoteFormatError("expected at least one signature to render a note, found none")
        return (self.text + "\n" + "".join(s.render() for s in self.signatures)).encode()

    def with_signatures(self, *added: NoteSignature) -> SignedNote:
        """This note with extra signature lines (exact duplicates are not repeated)."""
        sigs = list(self.signatures)
        sigs.extend(s for s in added if s not in sigs)
        return SignedNote(self.text, tuple(sigs))


def sign_note(text: str, signers: Sequence[NoteSigner]) -> bytes:
    """The signed note of `text` by every signer, in order."""
    check_text(text)
    if not signers:
        raise NoteKeyError("expected at least one signer, found none")
    raw = text.encode("utf-8")
    sigs = tuple(NoteSignature(s.name, s.key_id, s.sign(raw)) for s in signers)
    return SignedNote(text, sigs).render()


def open_note(data: bytes, verifiers: Sequence[Verifier]) -> SignedNote:
    """Parse `data` and verify it against trusted `verifiers`.

    Signed-note "Signatures": signatures whose (name, key id) match no verifier are
    ignored; one that matches is verified and a failure rejects the note; at least one
    must verify. Two signatures by the same known key are refused as ambiguous.
    """
    if not verifiers:
        raise NoteVerificationError("expected at least one trusted verifier, found none")
    note = SignedNote.parse(data)
    known = {(v.name, v.key_id): v for v in verifiers}
    raw = note.text.encode("utf-8")
    verified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for sig in note.signatures:
        ref = (sig.name, sig.key_id)
        verifier = known.get(ref)
        if verifier is None:
            continue
        if ref in seen:
            raise NoteVerificationError(f"expected one signature by {sig.name}, found several")
        seen.add(ref)
        verifier.verify(raw, sig.signature)
        verified.append(sig)
    if not verified:
        names = ", ".join(sorted({v.name for v in verifiers}))
        raise NoteVerificationError(f"expected a signature by a known key ({names}), found none")
    return SignedNote(note.text, note.signatures, tuple(verified))
