"""Key files of one region's issuer: the root key, the ledger writer key, signing keys.

Every private key lives in its own file created with mode 0600 under the config's
`key_dir`; the database only records public halves and states. The region root key
(Ed25519, optionally passphrase-encrypted) signs key entries for the log; the ledger
writer key (Ed25519) authenticates submissions to the region's node; signing keys
(ES256 by default) sign credentials. This module reads and writes files; it decides
nothing about which key is active (see issuer.keymgmt).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from credential.keys import (
    PrivateKey,
    SigningAlg,
    generate_private_key,
    private_key_from_pem,
    private_key_to_pem,
    public_key_der,
    read_private_key,
    write_private_key,
)
from issuer.config import IssuerConfig
from issuer.errors import ConfigError, SigningKeyError
from ledger.private_files import load_or_create_secret

SECRET_FILE_MODE = 0o600
PSEUDONYM_KEY_BYTES = 32  # bytes; an HMAC-SHA256 key as long as the hash (RFC 2104 §3)
PSEUDONYM_DOMAIN = "healthbridge/issuer/pseudonym/v1"
TOKEN_BYTES = 32  # bytes of randomness in an API bearer token


def write_secret(path: Path, data: bytes) -> None:
    """Create (or replace) a file readable by its owner only, written in one go."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, SECRET_FILE_MODE)
    os.replace(tmp, path)


def read_secret(path: Path) -> bytes:
    """Read a secret file, refusing one that group or others may read."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError as e:
        raise ConfigError(f"secret file {path} is missing") from e
    if mode & 0o077:
        raise ConfigError(f"secret file {path} must have mode 0600, found {mode:04o}")
    return path.read_bytes()


class KeyStore:
    """File access to one issuer's keys, with a cache of loaded signing keys."""

    def __init__(self, config: IssuerConfig) -> None:
        self.config = config
        self._cache: dict[str, PrivateKey] = {}
        self._pseudonym_key: bytes | None = None
        self._lock = threading.Lock()

    # root key -----------------------------------------------------------------------
    def create_root_key(self) -> ed25519.Ed25519PrivateKey:
        key = ed25519.Ed25519PrivateKey.generate()
        write_secret(
            self.config.root_key_path, private_key_to_pem(key, self.config.root_key_passphrase())
        )
        return key

    def root_key(self) -> ed25519.Ed25519PrivateKey:
        pem = read_secret(self.config.root_key_path)
        try:
            key = private_key_from_pem(pem, self.config.root_key_passphrase())
        except Exception as e:  # wrong passphrase, corrupt file: one clear message
            raise ConfigError(f"cannot load the region root key: {type(e).__name__}") from e
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ConfigError("the region root key must be Ed25519")
        return key

    def root_public_key_der(self) -> bytes:
        return public_key_der(self.root_key())

    # ledger writer key ----------------------------------------------------------------
    def create_writer_key(self) -> ed25519.Ed25519PrivateKey:
        key = ed25519.Ed25519PrivateKey.generate()
        write_secret(self.config.writer_key_path, private_key_to_pem(key))
        return key

    def writer_key(self) -> ed25519.Ed25519PrivateKey:
        key = private_key_from_pem(read_secret(self.config.writer_key_path))
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ConfigError("the ledger writer key must be Ed25519")
        return key

    # keyed hashes -----------------------------------------------------------------------
    def pseudonym_key(self) -> bytes:
        """The issuer's HMAC key for pseudonyms of personal values, created on first use.

        An unkeyed hash of a document number is no pseudonym: document numbers are few
        and structured (a letter and eight digits), so every one can be hashed and
        looked up in minutes. Under a secret key, the rows mean nothing without it.
        """
        with self._lock:
            if self._pseudonym_key is None:
                try:
                    self._pseudonym_key = load_or_create_secret(
                        self.config.pseudonym_key_path, PSEUDONYM_KEY_BYTES
                    )
                except OSError as e:
                    raise ConfigError(f"pseudonym key {self.config.pseudonym_key_path}: {e}") from e
            return self._pseudonym_key

    def pseudonym(self, purpose: str, *parts: str) -> str:
        """HMAC-SHA256 (RFC 2104) of the parts under the pseudonym key, 160 bits in hex.

        `purpose` separates uses (a rate-limit row never equals a delivery reference)."""
        message = "\x1f".join((PSEUDONYM_DOMAIN, purpose, *parts)).encode("utf-8")
        return hmac.new(self.pseudonym_key(), message, hashlib.sha256).hexdigest()[:40]

    def delivery_ref(self, document_number: str) -> str:
        """How the development code delivery names a recipient (never the number)."""
        return self.pseudonym("delivery", self.config.region, document_number)

    # API tokens -------------------------------------------------------------------------
    def create_token(self, path: Path) -> str:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        write_secret(path, token.encode("ascii"))
        return token

    def token(self, path: Path) -> str | None:
        if not path.exists():
            return None
        return read_secret(path).decode("ascii").strip() or None

    # signing keys -----------------------------------------------------------------------
    def signing_key_path(self, kid: str) -> Path:
        return self.config.signing_key_dir / f"{kid}.pem"

    def create_signing_key(self, alg: SigningAlg = SigningAlg.ES256) -> tuple[str, PrivateKey]:
        from credential.keys import key_id

        key = generate_private_key(alg)
        kid = key_id(public_key_der(key))
        self.config.signing_key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private_key(self.signing_key_path(kid), key)
        os.chmod(self.signing_key_path(kid), SECRET_FILE_MODE)
        with self._lock:
            self._cache[kid] = key
        return kid, key

    def signing_key(self, kid: str) -> PrivateKey:
        with self._lock:
            key = self._cache.get(kid)
        if key is not None:
            return key
        path = self.signing_key_path(kid)
        read_secret(path)  # refuses a file with loose permissions
        try:
            key = read_private_key(path)
        except Exception as e:
            raise SigningKeyError(f"cannot load signing key {kid}: {type(e).__name__}") from e
        with self._lock:
            self._cache[kid] = key
        return key

    def destroy_signing_key(self, kid: str) -> None:
        """Delete a compromised key's file: it must never sign again."""
        with self._lock:
            self._cache.pop(kid, None)
        self.signing_key_path(kid).unlink(missing_ok=True)
