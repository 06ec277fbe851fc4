"""Ledger node configuration: one typed, frozen object loaded from a TOML file.

What it does: names every limit of the node (with units), reads the node's TOML file,
resolves relative paths against the file's folder, and decodes writer / root public
keys. What it does not: it never reads private key material itself (the node loads the
log signing key from the file named here) and never touches the database.
"""

from __future__ import annotations

import base64
import binascii
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ledger.log.errors import LedgerError
from ledger.log.shards import Shard

# Sequencing: a batch is sealed after this long or this many entries, whichever first.
MAX_BATCH_DELAY_S = 0.5  # seconds
MAX_BATCH_ENTRIES = 4096  # entries
# Submissions (POST /v1/entries).
MAX_ENTRIES_PER_REQUEST = 1024  # entries
MAX_ENTRY_BYTES = 16 * 1024  # bytes, one encoded entry
MAX_BODY_BYTES = 8 * 1024 * 1024  # bytes, one request body
SUBMIT_TIMEOUT_S = 30.0  # seconds a submitter waits for its batch to commit
# Joint operation: a log re-collects cosignatures of its latest checkpoint at least this
# often, even when the tree did not grow, so stations see a quiet region as fresh
# (C2SP tlog-cosignature timestamps; docs/ledger-protocol.md §6).
CHECKPOINT_INTERVAL_S = 60.0  # seconds
MAX_CHECKPOINT_INTERVAL_S = 3600.0  # seconds
# Writer authentication: how far a request's timestamp may be from the node's clock.
AUTH_WINDOW_S = 300  # seconds
# Cache lifetimes (C2SP tlog-tiles: full tiles are immutable, the rest changes).
IMMUTABLE_MAX_AGE_S = 31_536_000  # seconds (one year)
MUTABLE_MAX_AGE_S = 1  # seconds, partial tiles and the checkpoint

ED25519_PUBLIC_KEY_BYTES = 32  # bytes, RFC 8032 §5.1.5

CosignHook = Callable[[bytes], Sequence[str]]
"""Called with a freshly signed checkpoint note; returns cosignature lines to attach."""


class ConfigError(LedgerError, ValueError):
    """A node configuration that cannot be used (missing field, bad key, bad value)."""


def decode_ed25519_public_key(text: str) -> bytes:
    """Decode a base64 (standard or url-safe, padding optional) raw Ed25519 public key."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        raw = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ConfigError(f"expected base64 Ed25519 public key, found {text[:20]!r}") from e
    if len(raw) != ED25519_PUBLIC_KEY_BYTES:
        raise ConfigError(
            f"expected a {ED25519_PUBLIC_KEY_BYTES}-byte Ed25519 public key, found {len(raw)} bytes"
        )
    return raw


def encode_ed25519_public_key(raw: bytes) -> str:
    """Render a raw Ed25519 public key the way the config file stores it."""
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class NodeConfig:
    """Everything one region's ledger node needs.

    `log_key_file` holds the C2SP signed-note private key (`PRIVATE+KEY+...`, mode 0600).
    `writer_public_keys` are raw Ed25519 keys allowed to POST /v1/entries (the region's
    issuer writer key and its root key). `root_public_key` is the region's Ed25519 root
    key that signs key entries (ledger.log.rules checks them).
    """

    region: str
    origin: str
    log_key_file: Path
    database_url: str
    root_public_key: bytes
    writer_public_keys: tuple[bytes, ...]
    max_batch_delay_s: float = MAX_BATCH_DELAY_S
    max_batch_entries: int = MAX_BATCH_ENTRIES
    cosign_hook: CosignHook | None = field(default=None, compare=False)
    # Joint operation (docs/ledger-protocol.md §6): when `consortium_file` is set the
    # node also runs this member's witness and validating mirror and collects
    # cosignatures; `witness_key_file` holds the witness note key (mode 0600).
    consortium_file: Path | None = None
    witness_key_file: Path | None = None
    member_id: str | None = None  # default: `region`
    checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S
    # Set on the config of one temporal shard's log (ledger.node.sharding): its
    # sequencer applies the shard's rule to every entry and freezes at its end.
    shard: Shard | None = None

    def __post_init__(self) -> None:
        if not self.region or not self.region.isalnum():
            raise ConfigError(f"expected an alphanumeric region id, found {self.region!r}")
        if not self.origin or any(c.isspace() for c in self.origin):
            # C2SP tlog-checkpoint: the origin line is non-empty and has no whitespace.
            raise ConfigError(f"expected an origin without whitespace, found {self.origin!r}")
        if len(self.root_public_key) != ED25519_PUBLIC_KEY_BYTES:
            raise ConfigError("expected a 32-byte Ed25519 root public key")
        if not self.writer_public_keys:
            raise ConfigError("expected at least one writer public key, found none")
        if not 0 < self.max_batch_delay_s <= MAX_BATCH_DELAY_S:
            raise ConfigError(
                f"expected 0 < max_batch_delay_s <= {MAX_BATCH_DELAY_S}, "
                f"found {self.max_batch_delay_s}"
            )
        if not 0 < self.checkpoint_interval_s <= MAX_CHECKPOINT_INTERVAL_S:
            raise ConfigError(
                f"expected 0 < checkpoint_interval_s <= {MAX_CHECKPOINT_INTERVAL_S}, "
                f"found {self.checkpoint_interval_s}"
            )
        if not 0 < self.max_batch_entries <= 65_536:
            raise ConfigError(
                f"expected 0 < max_batch_entries <= 65536, found {self.max_batch_entries}"
            )


def load_config(path: str | Path, cosign_hook: CosignHook | None = None) -> NodeConfig:
    """Read a node TOML file (as written by `healthbridge ledger init`)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read node config {p}: {e}") from e
    base = p.resolve().parent
    try:
        key_file = Path(str(data["log_key_file"]))
        writers = data["writer_public_keys"]
        if not isinstance(writers, list):
            raise ConfigError("expected writer_public_keys to be a list of base64 keys")
        seq = data.get("sequencer", {})
        return NodeConfig(
            region=str(data["region"]),
            origin=str(data["origin"]),
            log_key_file=key_file if key_file.is_absolute() else base / key_file,
            database_url=resolve_sqlite_url(str(data["database_url"]), base),
            root_public_key=decode_ed25519_public_key(str(data["root_public_key"])),
            writer_public_keys=tuple(decode_ed25519_public_key(str(w)) for w in writers),
            max_batch_delay_s=float(seq.get("max_batch_delay_s", MAX_BATCH_DELAY_S)),
            max_batch_entries=int(seq.get("max_batch_entries", MAX_BATCH_ENTRIES)),
            cosign_hook=cosign_hook,
            consortium_file=_optional_path(data.get("consortium_file"), base),
            witness_key_file=_optional_path(data.get("witness_key_file"), base),
            member_id=str(data["member_id"]) if "member_id" in data else None,
            checkpoint_interval_s=float(data.get("checkpoint_interval_s", CHECKPOINT_INTERVAL_S)),
        )
    except KeyError as e:
        raise ConfigError(f"node config {p} lacks required field {e.args[0]!r}") from e
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"node config {p}: {e}") from e


def _optional_path(value: object, base: Path) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"expected a file name, found {value!r}")
    p = Path(value)
    return p if p.is_absolute() else base / p


def resolve_sqlite_url(url: str, base: Path) -> str:
    """Make a relative SQLite path (`sqlite:///ledger.db`) relative to the config folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rel = url[len(prefix) :]
        if rel and rel != ":memory:":
            return prefix + str(base / rel)
    return url
