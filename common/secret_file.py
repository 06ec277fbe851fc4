"""Secret files (private keys, API tokens, passwords): created with mode 0600 before
any byte is written, so no other user can read them even for an instant.

One writer, two modes: `overwrite=False` refuses an existing file (key generation must
never silently replace a key), `overwrite=True` replaces it atomically (a temporary
0600 file in the same folder, fsync, rename: a crash leaves the old or the new content,
never half). `check_secret_mode` refuses a file that group or others may read.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

SECRET_FILE_MODE = 0o600  # owner read/write only
SECRET_DIR_MODE = 0o700  # a folder the writer creates for secrets: owner only


class InsecureSecretFileError(OSError):
    """A secret file that group or others may read (expected mode 0600)."""


def write_secret(path: str | Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write `data` to `path` with mode 0600 from the first byte.

    Missing parent folders are created with mode 0700. Raises FileExistsError when
    `path` exists and `overwrite` is False.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=SECRET_DIR_MODE)
    if not overwrite:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_FILE_MODE)
        # open(2) applies the umask; the file must be 0600 whatever it is.
        os.fchmod(fd, SECRET_FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, SECRET_FILE_MODE)  # mkstemp already uses 0600; keep it explicit
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_secret_mode(path: str | Path) -> None:
    """Raise InsecureSecretFileError when group or others may read `path`."""
    mode = stat.S_IMODE(Path(path).stat().st_mode)
    if mode & 0o077:
        raise InsecureSecretFileError(
            f"{path} has mode {mode:04o}, expected {SECRET_FILE_MODE:04o}; run: chmod 600 {path}"
        )
