"""Files only their owner may read: databases and secrets created with mode 0600.

What it does: creates (or tightens) a file to mode 0600 before anything else opens
it, so a SQLite database, its WAL and shared-memory files (SQLite gives those the
mode of the database file) and a secret never exist world-readable, whatever the
process umask; and loads or creates small random secrets (HMAC keys) the same way,
refusing a secret that group or others may read.

What it does not do: decide what is secret (each service names its files) or encrypt
anything at rest. Used by the ledger, issuer, verifier station and wallet alike, which
is why it lives in the package everything else may import.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

PRIVATE_FILE_MODE = 0o600  # owner read/write only
PRIVATE_DIR_MODE = 0o700  # owner only
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")  # SQLite's companions of a database
DEFAULT_SECRET_BYTES = 32  # bytes; an HMAC-SHA256 key as long as the hash (RFC 2104 §3)
MAX_SECRET_BYTES = 4096  # bytes; refuse to read anything larger as a key


class InsecureFileError(OSError):
    """A secret file is readable by group or others, or is not a usable secret."""


def make_private(path: Path) -> Path:
    """Create `path` empty with mode 0600 if missing, else tighten it to 0600."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        os.chmod(path, PRIVATE_FILE_MODE)
    else:
        os.close(fd)
        # The mode argument of open() is masked by the umask; 0600 is never widened by
        # it, but chmod once more so a later reader sees exactly 0600.
        os.chmod(path, PRIVATE_FILE_MODE)
    return path


def private_sqlite(path: str | Path) -> Path:
    """Prepare a SQLite database file so that it and its side files are mode 0600.

    SQLite creates `-wal` / `-shm` / `-journal` files with the mode of the database
    file, so pre-creating the database 0600 covers them; side files left by an older
    version with a wider mode are tightened as well.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    make_private(p)
    for suffix in SQLITE_SIDE_FILES:
        side = p.with_name(p.name + suffix)
        if side.exists():
            os.chmod(side, PRIVATE_FILE_MODE)
    return p


def sqlite_path_of(url: str) -> Path | None:
    """The file behind a SQLAlchemy SQLite URL, None for memory or another engine."""
    if not url.startswith("sqlite:///"):
        return None
    rest = url.removeprefix("sqlite:///").split("?", 1)[0]
    if not rest or rest == ":memory:":
        return None
    return Path(rest)


def read_private_secret(path: Path) -> bytes:
    """Read a secret file, refusing one that group or others may read, or an empty one."""
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise InsecureFileError(
            f"{path} has mode {mode:04o}, expected {PRIVATE_FILE_MODE:04o}; run: chmod 600 {path}"
        )
    if not 0 < st.st_size <= MAX_SECRET_BYTES:
        raise InsecureFileError(f"{path}: expected 1-{MAX_SECRET_BYTES} bytes of secret")
    return path.read_bytes()


def load_or_create_secret(path: Path, size: int = DEFAULT_SECRET_BYTES) -> bytes:
    """The random secret in `path`, created (mode 0600, written atomically) if missing."""
    if path.exists():
        return read_private_secret(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(size))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, PRIVATE_FILE_MODE)
        # link() fails if another process created the secret meanwhile: both then use
        # the one that won, never two different keys.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return read_private_secret(path)
