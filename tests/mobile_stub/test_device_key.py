"""The device key file: created 0600 on first use, reused after, refused when damaged."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from credential.keys import public_key_der, write_private_key
from mobile_stub.device import DEVICE_KEY_FILE, DeviceKeyFile
from mobile_stub.errors import (
    DeviceKeyCorruptError,
    DeviceKeyMissingError,
    InsecurePermissionsError,
    WrongPassphraseError,
)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_first_use_creates_p256_key_with_mode_0600(tmp_path: Path) -> None:
    folder = tmp_path / "wallet"
    key = DeviceKeyFile(folder).load_or_create()
    assert mode(folder / DEVICE_KEY_FILE) == 0o600
    assert mode(folder) == 0o700
    assert key.private_key.curve.name == "secp256r1"
    assert key.public_der == public_key_der(key.private_key)


def test_second_open_reuses_the_same_key(tmp_path: Path) -> None:
    first = DeviceKeyFile(tmp_path).load_or_create()
    second = DeviceKeyFile(tmp_path).load_or_create()
    assert first.public_der == second.public_der


def test_create_refuses_to_overwrite_an_existing_key(tmp_path: Path) -> None:
    DeviceKeyFile(tmp_path).create()
    with pytest.raises(DeviceKeyCorruptError, match="refusing to overwrite"):
        DeviceKeyFile(tmp_path).create()


def test_missing_key_says_to_enrol_again(tmp_path: Path) -> None:
    with pytest.raises(DeviceKeyMissingError, match="enrol again"):
        DeviceKeyFile(tmp_path).load()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        bytes(range(256)),
    ],
)
def test_corrupted_key_file_gives_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / DEVICE_KEY_FILE
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(DeviceKeyCorruptError, match="corrupted"):
        DeviceKeyFile(tmp_path).load()


def test_oversized_key_file_is_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / DEVICE_KEY_FILE
    path.write_bytes(b"A" * 100_000)
    path.chmod(0o600)
    with pytest.raises(DeviceKeyCorruptError, match="larger than"):
        DeviceKeyFile(tmp_path).load()


def test_world_readable_key_is_refused(tmp_path: Path) -> None:
    DeviceKeyFile(tmp_path).create()
    (tmp_path / DEVICE_KEY_FILE).chmod(0o644)
    with pytest.raises(InsecurePermissionsError, match="chmod 600"):
        DeviceKeyFile(tmp_path).load()


def test_ed25519_key_is_not_a_device_key(tmp_path: Path) -> None:
    write_private_key(tmp_path / DEVICE_KEY_FILE, ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(DeviceKeyCorruptError, match="not a P-256 key"):
        DeviceKeyFile(tmp_path).load()


def test_passphrase_protected_key_round_trips(tmp_path: Path) -> None:
    made = DeviceKeyFile(tmp_path, b"correct horse").create()
    assert b"ENCRYPTED" in (tmp_path / DEVICE_KEY_FILE).read_bytes()
    loaded = DeviceKeyFile(tmp_path, b"correct horse").load()
    assert loaded.public_der == made.public_der


def test_passphrase_protected_key_without_passphrase_asks_for_it(tmp_path: Path) -> None:
    DeviceKeyFile(tmp_path, b"correct horse").create()
    with pytest.raises(WrongPassphraseError, match="passphrase"):
        DeviceKeyFile(tmp_path).load()


def test_wrong_passphrase_is_named_as_such(tmp_path: Path) -> None:
    DeviceKeyFile(tmp_path, b"correct horse").create()
    with pytest.raises(WrongPassphraseError, match="wrong passphrase"):
        DeviceKeyFile(tmp_path, b"battery staple").load()


def test_repr_never_shows_key_material(tmp_path: Path) -> None:
    key = DeviceKeyFile(tmp_path).create()
    text = repr(key)
    assert "bytes" in text
    assert key.public_der.hex() not in text
