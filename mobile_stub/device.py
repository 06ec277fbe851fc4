"""The resident's device key: generated on first use, kept in the wallet folder, mode 0600.

The device key (P-256, ES256) is what binds a credential to this phone: the issuer
puts its public half in the credential's `cnf` claim (RFC 7800) and every presentation
carries a proof signed with the private half. The private key never leaves this module
except as an in-memory object handed to `credential.presentation.make_presentation`
and to the request signer; it is never logged, printed or sent.

This module reads and writes the key file only. It does not talk to the issuer and
does not decide when a key is needed (that is `mobile_stub.wallet`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from credential.errors import CredentialError
from credential.keys import (
    SigningAlg,
    generate_private_key,
    public_key_der,
    read_private_key,
    write_private_key,
)
from mobile_stub.errors import (
    DeviceKeyCorruptError,
    DeviceKeyMissingError,
    InsecurePermissionsError,
    WrongPassphraseError,
)

DEVICE_KEY_FILE = "device_key.pem"
SECRET_FILE_MODE = 0o600  # owner read/write only
WALLET_DIR_MODE = 0o700  # owner only
MAX_KEY_FILE_BYTES = 16 * 1024  # bytes; a P-256 PEM is under 1 KiB
ENCRYPTED_PEM_MARKER = b"ENCRYPTED"  # PKCS#8 EncryptedPrivateKeyInfo label (RFC 7468 §11)


PENDING_KEY_FILE = "device_key.pending.pem"  # a key made for an enrolment in progress


def region_key_name(region: str) -> str:
    """`device_key.<REGION>.pem`; regions are 2-8 capital letters (no path characters)."""
    if not (2 <= len(region) <= 8 and region.isascii() and region.isupper() and region.isalpha()):
        raise DeviceKeyCorruptError(f"not a region id: {region!r}")
    return f"device_key.{region}.pem"


def ensure_wallet_dir(path: Path) -> Path:
    """Create the wallet folder (mode 0700) if needed and return it."""
    try:
        path.mkdir(mode=WALLET_DIR_MODE, parents=True, exist_ok=True)
    except OSError as e:
        raise DeviceKeyMissingError(f"cannot create wallet folder {path}: {e.strerror}") from e
    return path


def check_private_mode(path: Path) -> None:
    """Refuse a secret file that group or others can read (expected 0600)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InsecurePermissionsError(
            f"{path} has mode {mode:04o}, expected {SECRET_FILE_MODE:04o}; run: chmod 600 {path}"
        )


@dataclass(frozen=True)
class DeviceKey:
    """The loaded device key: the private key object and its DER SPKI public key."""

    private_key: Any
    public_der: bytes

    def __repr__(self) -> str:
        # Never let a stray print or log line show key material.
        return f"DeviceKey(public_der={len(self.public_der)} bytes)"


class DeviceKeyFile:
    """The device key file in one wallet folder."""

    def __init__(
        self, wallet_dir: Path, passphrase: bytes | None = None, name: str = DEVICE_KEY_FILE
    ) -> None:
        self.path = wallet_dir / name
        self._wallet_dir = wallet_dir
        self._passphrase = passphrase

    def for_region(self, region: str) -> DeviceKeyFile:
        """The key file of one region's credential in the same folder (same passphrase):
        each region's credential names its own device key, so that two regions' codes
        of one person share nothing a camera can read."""
        return self.sibling(region_key_name(region))

    def sibling(self, name: str) -> DeviceKeyFile:
        return DeviceKeyFile(self._wallet_dir, self._passphrase, name)

    def rename_to(self, other: DeviceKeyFile) -> None:
        os.replace(self.path, other.path)

    def exists(self) -> bool:
        return self.path.exists()

    def create(self) -> DeviceKey:
        """Generate a fresh ES256 key and write it with mode 0600; refuse to overwrite."""
        if self.path.exists():
            raise DeviceKeyCorruptError(f"refusing to overwrite the device key at {self.path}")
        ensure_wallet_dir(self._wallet_dir)
        key = generate_private_key(SigningAlg.ES256)
        try:
            write_private_key(self.path, key, self._passphrase)
        except OSError as e:
            raise DeviceKeyMissingError(f"cannot write device key {self.path}: {e}") from e
        # Whatever the helper's umask handling, the file must end up 0600.
        os.chmod(self.path, SECRET_FILE_MODE)
        return DeviceKey(private_key=key, public_der=public_key_der(key))

    def load(self) -> DeviceKey:
        """Read the key, refusing a missing, world-readable, encrypted-without-passphrase
        or unparseable file with a message the resident can act on."""
        if not self.path.exists():
            raise DeviceKeyMissingError(
                f"device key missing at {self.path}; the credentials in this wallet are bound "
                "to it and cannot be shown: enrol again with `healthbridge wallet enroll`"
            )
        check_private_mode(self.path)
        try:
            with self.path.open("rb") as f:
                head = f.read(MAX_KEY_FILE_BYTES + 1)
        except OSError as e:
            raise DeviceKeyCorruptError(f"cannot read device key {self.path}: {e}") from e
        if len(head) > MAX_KEY_FILE_BYTES:
            raise DeviceKeyCorruptError(
                f"device key {self.path} is larger than {MAX_KEY_FILE_BYTES} bytes: not a key"
            )
        encrypted = ENCRYPTED_PEM_MARKER in head
        if encrypted and self._passphrase is None:
            raise WrongPassphraseError(
                "the device key is protected by a passphrase: pass --passphrase-file or set "
                "HEALTHBRIDGE_WALLET_PASSPHRASE"
            )
        try:
            key = read_private_key(self.path, self._passphrase)
            der = public_key_der(key)
        except (CredentialError, ValueError, TypeError, AttributeError) as e:
            if encrypted:
                raise WrongPassphraseError("wrong passphrase for the device key") from e
            raise DeviceKeyCorruptError(
                f"device key {self.path} is corrupted (expected a PEM P-256 private key); "
                "restore it from a backup or enrol again"
            ) from e
        # Device proofs are ES256 only: a key of any other type is as good as corrupt.
        if not (
            isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
        ):
            raise DeviceKeyCorruptError(
                f"device key {self.path} is not a P-256 key (found {type(key).__name__})"
            )
        return DeviceKey(private_key=key, public_der=der)

    def load_or_create(self) -> DeviceKey:
        return self.load() if self.path.exists() else self.create()
