"""Issuer configuration: one frozen dataclass, read from a TOML file and env variables.

The TOML file holds an `[issuer]` table; every key may be overridden by an environment
variable `HB_ISSUER_<KEY>` (upper case). Secrets are never values here: the config only
names files (mode 0600) under `key_dir` that hold them. This module reads files and the
environment; it does not create keys or databases (see `issuer.setup`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from issuer.errors import ConfigError

ENV_PREFIX = "HB_ISSUER_"
REGION_RE = re.compile(r"^[A-Z]{2,8}$")
# A replica's name in its answers (issuer.replica): a short token that starts with a
# letter and holds no dot or colon, so it can never be an IP address or host:port.
REPLICA_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")

DEFAULT_CREDENTIAL_VALIDITY_S = 24 * 3_600  # seconds a credential is valid at most
DEFAULT_REFRESH_BEFORE_S = 6 * 3_600  # re-issue when less than this is left
DEFAULT_CODE_TTL_S = 600  # seconds an enrolment code stays usable
DEFAULT_CODE_REQUESTS_PER_DOC = 5  # code requests per document number per window
DEFAULT_CODE_REQUESTS_PER_ADDR = 30  # code requests per client address per window
DEFAULT_ATTEMPTS_PER_DOC = 5  # enrolment attempts per document number per window
DEFAULT_ATTEMPTS_PER_ADDR = 30  # enrolment attempts per client address per window
DEFAULT_RATE_WINDOW_S = 3_600  # the rate-limit window, seconds
DEFAULT_DEVICE_AUTH_SKEW_S = 300  # accepted clock difference for HB-Device headers
# Seconds an HB-Device timestamp may lag the holder's newest accepted one: a wallet's
# overlapping or retried requests arrive out of order (issuer.device_auth).
DEFAULT_DEVICE_AUTH_REORDER_S = 30
DEFAULT_ANCHOR_BATCH = 1024  # outbox rows per ledger submission (one node request)
DEFAULT_ANCHOR_INTERVAL_S = 0.2  # idle poll interval of the anchor worker
DEFAULT_ANCHOR_MAX_BACKOFF_S = 30.0  # cap of the exponential retry backoff
DEFAULT_SYNC_INTERVAL_S = 60.0  # how often the service syncs other regions' logs
DEFAULT_LEDGER_TIMEOUT_S = 10.0
DEFAULT_MAX_BODY_BYTES = 64 * 1024  # largest accepted HTTP request body
DEFAULT_KEY_VALIDITY_S = 365 * 86_400  # a signing key's registered validity


@dataclass(frozen=True)
class IssuerConfig:
    region: str
    data_dir: Path
    database_url: str = ""
    key_dir: Path = Path()
    ledger_url: str | None = None
    consortium_path: Path | None = None
    sync_state_path: Path | None = None
    code_delivery_file: Path | None = None
    credential_validity_s: int = DEFAULT_CREDENTIAL_VALIDITY_S
    refresh_before_s: int = DEFAULT_REFRESH_BEFORE_S
    code_ttl_s: int = DEFAULT_CODE_TTL_S
    code_requests_per_doc: int = DEFAULT_CODE_REQUESTS_PER_DOC
    code_requests_per_addr: int = DEFAULT_CODE_REQUESTS_PER_ADDR
    attempts_per_doc: int = DEFAULT_ATTEMPTS_PER_DOC
    attempts_per_addr: int = DEFAULT_ATTEMPTS_PER_ADDR
    rate_window_s: int = DEFAULT_RATE_WINDOW_S
    device_auth_skew_s: int = DEFAULT_DEVICE_AUTH_SKEW_S
    device_auth_reorder_s: int = DEFAULT_DEVICE_AUTH_REORDER_S
    anchor_worker: bool = True
    group_commit: bool = True  # credential fetches of concurrent requests share one commit
    anchor_batch: int = DEFAULT_ANCHOR_BATCH
    anchor_interval_s: float = DEFAULT_ANCHOR_INTERVAL_S
    anchor_max_backoff_s: float = DEFAULT_ANCHOR_MAX_BACKOFF_S
    sync_interval_s: float = DEFAULT_SYNC_INTERVAL_S
    ledger_timeout_s: float = DEFAULT_LEDGER_TIMEOUT_S
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    key_validity_s: int = DEFAULT_KEY_VALIDITY_S
    root_key_passphrase_env: str | None = None  # name of an env var, never the value
    # Reverse proxies in front that set X-Forwarded-For / -Proto (deploy/nginx/): the
    # client address of rate limits, login backoff and the audit log is then taken
    # from that many hops back. 0: the peer address is the client (no proxy).
    trusted_proxies: int = 0
    # This process's name in the `X-Issuer-Replica` header of its answers (an operator
    # tells replicas apart behind the proxy). Empty: a keyed hash of the host name and
    # process id (issuer.replica). Never an address: REPLICA_NAME_RE.
    replica_name: str = ""

    def __post_init__(self) -> None:
        if not REGION_RE.fullmatch(self.region):
            raise ConfigError(f"region must be 2-8 capital letters, found {self.region!r}")
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.data_dir / 'issuer.db'}")
        if self.key_dir == Path():
            object.__setattr__(self, "key_dir", self.data_dir / "keys")
        if self.sync_state_path is None:
            object.__setattr__(self, "sync_state_path", self.data_dir / "sync-state.db")
        if not 0 <= self.trusted_proxies <= 4:
            raise ConfigError(f"trusted_proxies must be 0-4, found {self.trusted_proxies}")
        if self.replica_name and not REPLICA_NAME_RE.fullmatch(self.replica_name):
            raise ConfigError(
                "replica_name must be 1-32 letters, digits, '-' or '_', starting with a "
                f"letter (never an address), found {self.replica_name!r}"
            )
        if self.credential_validity_s <= 0 or self.refresh_before_s < 0:
            raise ConfigError("credential_validity_s must be > 0 and refresh_before_s >= 0")

    # Files under key_dir (all created with mode 0600 by issuer.setup).
    @property
    def root_key_path(self) -> Path:
        return self.key_dir / "root.pem"

    @property
    def writer_key_path(self) -> Path:
        return self.key_dir / "ledger-writer.pem"

    @property
    def signing_key_dir(self) -> Path:
        return self.key_dir / "signing"

    @property
    def authority_token_path(self) -> Path:
        return self.key_dir / "health-authority.token"

    @property
    def pseudonym_key_path(self) -> Path:
        """HMAC key for the issuer's keyed hashes of document numbers and addresses
        (rate-limit rows, development code delivery): 32 random bytes, mode 0600."""
        return self.key_dir / "pseudonym.key"

    @property
    def delivery_file(self) -> Path:
        return self.code_delivery_file or self.data_dir / "enrolment-codes.txt"

    def root_key_passphrase(self) -> bytes | None:
        if not self.root_key_passphrase_env:
            return None
        value = os.environ.get(self.root_key_passphrase_env)
        if value is None:
            raise ConfigError(f"env variable {self.root_key_passphrase_env} is not set")
        return value.encode()

    def replace(self, **changes: Any) -> IssuerConfig:
        return dataclasses.replace(self, **changes)


def _coerce(field: dataclasses.Field[Any], raw: Any) -> Any:
    kind = str(field.type)
    try:
        if "Path" in kind:
            return None if raw in (None, "") else Path(str(raw))
        if kind == "bool":
            return raw if isinstance(raw, bool) else str(raw).lower() in {"1", "true", "yes"}
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        return None if raw in (None, "") and "None" in kind else str(raw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{field.name}: expected {kind}, found {raw!r}") from e


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> IssuerConfig:
    """Read `[issuer]` from the TOML file (if any), then apply HB_ISSUER_* overrides."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if path is not None:
        try:
            doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read issuer config {path}: {e}") from e
        table = doc.get("issuer", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: expected an [issuer] table")
        values.update(table)
    fields = {f.name: f for f in dataclasses.fields(IssuerConfig)}
    for name in fields:
        if ENV_PREFIX + name.upper() in env:
            values[name] = env[ENV_PREFIX + name.upper()]
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"unknown issuer config keys: {sorted(unknown)}")
    for required in ("region", "data_dir"):
        if required not in values:
            raise ConfigError(f"issuer config needs {required!r} (TOML or {ENV_PREFIX}*)")
    return IssuerConfig(**{k: _coerce(fields[k], v) for k, v in values.items()})


def render_config(config: IssuerConfig) -> dict[str, Any]:
    """The TOML-ready `[issuer]` table of a config (paths as strings, None left out)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if v is None:
            continue
        out[f.name] = str(v) if isinstance(v, Path) else v
    return {"issuer": out}
