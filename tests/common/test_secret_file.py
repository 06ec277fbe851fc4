"""Secret files are 0600 from the first byte, never silently replaced unless asked, and
replaced atomically when asked."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from common.secret_file import (
    InsecureSecretFileError,
    check_secret_mode,
    write_secret,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secret_is_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_secret(tmp_path / "new" / "key.pem", b"secret")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "new" / "key.pem") == 0o600
    assert _mode(tmp_path / "new") == 0o700
    check_secret_mode(tmp_path / "new" / "key.pem")


def test_existing_key_is_never_silently_replaced(tmp_path: Path) -> None:
    path = tmp_path / "root.pem"
    write_secret(path, b"first")
    with pytest.raises(FileExistsError):
        write_secret(path, b"second")
    assert path.read_bytes() == b"first"


def test_replacing_a_world_readable_file_leaves_it_0600(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_secret(path, b"new", overwrite=True)
    assert path.read_bytes() == b"new"
    assert _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["token"]  # no temporary left behind


def test_group_readable_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    write_secret(path, b"k")
    path.chmod(0o640)
    with pytest.raises(InsecureSecretFileError, match="0640"):
        check_secret_mode(path)
