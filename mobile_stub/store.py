"""The wallet's credential store: per-region credentials and holder ids in one JSON file.

The document format is versioned (`FORMAT`) and has a symmetric pair,
`parse_store(bytes) -> WalletDocument` / `render_store(doc) -> bytes`, so a store that
was edited by hand or truncated by a crash is refused with a clear error rather than
half-read. `StoreFile` is the disk edge (atomic replace, mode 0600); `MemoryStore`
is its in-memory fake for tests.

The store holds what the phone must show offline: the compact JWS (which names the
resident's masked name only, per the credential format), the issuer's status summary
and the holder id the issuer gave. It never holds the device key (see
`mobile_stub.device`) nor the document number used at enrolment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from common.secret_file import write_secret
from mobile_stub.device import check_private_mode, ensure_wallet_dir
from mobile_stub.errors import StoreCorruptError

FORMAT = "healthbridge-wallet/1"
STORE_FILE = "credentials.json"
MAX_STORE_BYTES = 1024 * 1024  # bytes; a few credentials take a few KiB
MAX_JWS_CHARS = 8192  # characters; far above a QR-sized credential
MAX_HOLDER_ID_CHARS = 256  # characters
MAX_REGIONS = 16  # regions a wallet may hold credentials for


@dataclass(frozen=True)
class StatusSummary:
    """The issuer's status block: colour, basis and expiry, as the issuer reported it."""

    colour: str
    basis: str
    expires_at: int

    @classmethod
    def from_json(cls, obj: Any) -> StatusSummary:
        if not isinstance(obj, dict):
            raise StoreCorruptError(f"status must be an object, found {type(obj).__name__}")
        colour, basis, expires = obj.get("colour"), obj.get("basis"), obj.get("expires_at")
        if not isinstance(colour, str) or not isinstance(basis, str):
            raise StoreCorruptError("status.colour and status.basis must be strings")
        if isinstance(expires, bool) or not isinstance(expires, int):
            raise StoreCorruptError(f"status.expires_at must be an integer, found {expires!r}")
        return cls(colour=colour, basis=basis, expires_at=expires)

    def to_json(self) -> dict[str, Any]:
        return {"colour": self.colour, "basis": self.basis, "expires_at": self.expires_at}


@dataclass(frozen=True)
class StoredCredential:
    """One region's credential in the wallet."""

    region: str
    holder_id: str
    credential: str  # compact JWS
    issuer_url: str
    status: StatusSummary
    updated_at: int  # Unix seconds when the wallet last stored it

    def __post_init__(self) -> None:
        if not 0 < len(self.holder_id) <= MAX_HOLDER_ID_CHARS:
            raise StoreCorruptError(f"holder_id must be 1-{MAX_HOLDER_ID_CHARS} characters")
        if not 0 < len(self.credential) <= MAX_JWS_CHARS or self.credential.count(".") != 2:
            raise StoreCorruptError("credential must be a compact JWS (three dot-separated parts)")

    @classmethod
    def from_json(cls, region: str, obj: Any) -> StoredCredential:
        if not isinstance(obj, dict):
            raise StoreCorruptError(f"entry {region} must be an object")
        fields = {}
        for name in ("holder_id", "credential", "issuer_url"):
            value = obj.get(name)
            if not isinstance(value, str):
                raise StoreCorruptError(f"entry {region}: {name} must be a string")
            fields[name] = value
        updated = obj.get("updated_at")
        if isinstance(updated, bool) or not isinstance(updated, int):
            raise StoreCorruptError(f"entry {region}: updated_at must be an integer")
        return cls(
            region=region,
            status=StatusSummary.from_json(obj.get("status")),
            updated_at=updated,
            **fields,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "holder_id": self.holder_id,
            "credential": self.credential,
            "issuer_url": self.issuer_url,
            "status": self.status.to_json(),
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class WalletDocument:
    """The whole store: credentials by region and the region shown by default."""

    entries: dict[str, StoredCredential] = field(default_factory=dict)
    home: str | None = None

    def with_entry(self, entry: StoredCredential) -> WalletDocument:
        entries = dict(self.entries)
        entries[entry.region] = entry
        return replace(self, entries=entries, home=self.home or entry.region)


def parse_store(data: bytes) -> WalletDocument:
    """Parse the store file; refuse anything but the exact format `render_store` writes."""
    if len(data) > MAX_STORE_BYTES:
        raise StoreCorruptError(f"store is {len(data)} bytes, at most {MAX_STORE_BYTES} expected")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StoreCorruptError(f"credential store is not valid JSON: {e}") from e
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise StoreCorruptError(f"credential store format: expected {FORMAT!r}, found {found!r}")
    raw_entries = obj.get("entries")
    if not isinstance(raw_entries, dict) or len(raw_entries) > MAX_REGIONS:
        raise StoreCorruptError(f"entries must be an object with at most {MAX_REGIONS} regions")
    entries = {r: StoredCredential.from_json(r, e) for r, e in raw_entries.items()}
    home = obj.get("home")
    if home is not None and home not in entries:
        raise StoreCorruptError(f"home region {home!r} has no credential in the store")
    return WalletDocument(entries=entries, home=home)


def render_store(doc: WalletDocument) -> bytes:
    body = {
        "format": FORMAT,
        "home": doc.home,
        "entries": {r: e.to_json() for r, e in sorted(doc.entries.items())},
    }
    return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode("utf-8")


class CredentialStore(Protocol):
    """Where the wallet keeps its document (a file on the phone, or memory in tests)."""

    def load(self) -> WalletDocument: ...

    def save(self, doc: WalletDocument) -> None: ...


class MemoryStore:
    """In-memory CredentialStore: round-trips through the wire format like the file does."""

    def __init__(self) -> None:
        self._data: bytes | None = None

    def load(self) -> WalletDocument:
        return WalletDocument() if self._data is None else parse_store(self._data)

    def save(self, doc: WalletDocument) -> None:
        self._data = render_store(doc)


class StoreFile:
    """The credential store on disk: `credentials.json` in the wallet folder, mode 0600."""

    def __init__(self, wallet_dir: Path) -> None:
        self.wallet_dir = wallet_dir
        self.path = wallet_dir / STORE_FILE

    def load(self) -> WalletDocument:
        if not self.path.exists():
            return WalletDocument()
        check_private_mode(self.path)
        try:
            with self.path.open("rb") as f:
                data = f.read(MAX_STORE_BYTES + 1)
        except OSError as e:
            raise StoreCorruptError(f"cannot read credential store {self.path}: {e}") from e
        return parse_store(data)

    def save(self, doc: WalletDocument) -> None:
        """Write atomically: a crash leaves either the old or the new store, never half."""
        ensure_wallet_dir(self.wallet_dir)
        data = render_store(doc)
        try:
            write_secret(self.path, data, overwrite=True)
        except OSError as e:
            raise StoreCorruptError(f"cannot write credential store {self.path}: {e}") from e
