"""The station folder and its configuration file (station.toml).

What it does: names the files of a station folder (the consortium trust root copied in
at `init`, the synced ledger state, the scan log, the configuration) and parses /
renders the configuration: the station's policy (what each status colour means here,
how old the revocation view may be, what to do when it is older — fail closed by
default) and its scan settings. Every field is validated and errors name the field.

What it does not do: sync, scan or hold secrets — a station has no private key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from credential.claims import StatusColour
from credential.languages import DEFAULT_LANGUAGE, Language, LanguageError, parse_language
from credential.verdict import DEFAULT_MAX_SYNC_AGE_S, Decision, StationPolicy
from ledger.clients.sync import SourcePace
from verifier.errors import StationConfigError

CONFIG_VERSION = 1
CONFIG_FILE = "station.toml"
CONSORTIUM_FILE = "consortium.toml"
STATE_DB = "state.db"  # the sync client's SQLite state (ledger.clients.sync)
SCAN_LOG_DB = "scans.db"
MAX_CONFIG_BYTES = 64 * 1024  # bytes
DEFAULT_SYNC_INTERVAL_S = 300  # seconds between background syncs while online
DEFAULT_KIOSK_PORT = 8088
DEFAULT_DEDUPE_S = 4.0  # seconds


@dataclass(frozen=True)
class StationConfig:
    """A station's settings; `policy` decides, the rest tunes the loop."""

    name: str = "station"
    policy: StationPolicy = field(default_factory=StationPolicy)
    sync_interval_s: int = DEFAULT_SYNC_INTERVAL_S
    kiosk_port: int = DEFAULT_KIOSK_PORT
    dedupe_s: float = DEFAULT_DEDUPE_S
    # Replay memory: "memory" (this station alone) or a redis:// URL shared by the
    # checkpoint's lanes (verifier.replay).
    replay: str = "memory"
    language: Language = DEFAULT_LANGUAGE  # the kiosk's language; staff may switch it
    # Accept a consortium whose quorum one region's own witness can meet alone (then
    # that region can show this station a forked history). Off unless set by name.
    insecure_accept_self_cosigned_logs: bool = False
    # How long one ledger source may take over one log in one sync pass
    # (ledger.clients.sync.SourcePace; optional [sync_pace] table, defaults otherwise).
    sync_pace: SourcePace = field(default_factory=SourcePace)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 64:
            raise StationConfigError("name: expected 1-64 characters")
        if self.sync_interval_s < 10:
            raise StationConfigError(
                f"sync_interval_s: expected >= 10, found {self.sync_interval_s}"
            )
        if not 0 < self.kiosk_port < 65536:
            raise StationConfigError(f"kiosk_port: expected 1-65535, found {self.kiosk_port}")
        if not 0 < self.dedupe_s <= 60:
            raise StationConfigError(f"dedupe_s: expected 0-60 seconds, found {self.dedupe_s}")
        from verifier.replay import parse_replay_setting

        parse_replay_setting(self.replay)


def render_config(c: StationConfig) -> str:
    doc: dict[str, Any] = {
        "version": CONFIG_VERSION,
        "name": c.name,
        "sync_interval_s": c.sync_interval_s,
        "kiosk_port": c.kiosk_port,
        "dedupe_s": c.dedupe_s,
        "replay": c.replay,
        "language": c.language.value,
        "policy": {
            "max_sync_age_s": c.policy.max_sync_age_s,
            "on_revocation_unknown": c.policy.on_revocation_unknown.value,
            "colours": {k.value: v.value for k, v in c.policy.colours.items()},
        },
    }
    if c.insecure_accept_self_cosigned_logs:
        doc["insecure_accept_self_cosigned_logs"] = True
    if c.sync_pace != SourcePace():
        doc["sync_pace"] = {"min_s": c.sync_pace.min_s, "max_avg_s": c.sync_pace.max_avg_s,
                            "cap_s": c.sync_pace.cap_s}  # fmt: skip
    return tomli_w.dumps(doc)


def _get(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        found = type(value).__name__ if key in table else "nothing"
        raise StationConfigError(f"{where}{key}: expected {kind}, found {found}")
    return value


def parse_config(data: str | bytes) -> StationConfig:
    if isinstance(data, bytes):
        if len(data) > MAX_CONFIG_BYTES:
            raise StationConfigError(
                f"expected at most {MAX_CONFIG_BYTES} bytes, found {len(data)}"
            )
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise StationConfigError("expected UTF-8 TOML") from e
    try:
        doc = tomllib.loads(data)
    except tomllib.TOMLDecodeError as e:
        raise StationConfigError(f"not valid TOML: {e}") from e
    if doc.get("version") != CONFIG_VERSION:
        raise StationConfigError(
            f"version: expected {CONFIG_VERSION}, found {doc.get('version')!r}"
        )
    pol = _get(doc, "policy", dict, "")
    colours_raw = _get(pol, "colours", dict, "policy.")
    try:
        colours = {StatusColour(k): Decision(v) for k, v in colours_raw.items()}
        on_unknown = Decision(_get(pol, "on_revocation_unknown", str, "policy."))
        policy = StationPolicy(colours, _get(pol, "max_sync_age_s", int, "policy."), on_unknown)
    except ValueError as e:
        raise StationConfigError(f"policy: {e}") from e
    # `language` came after version 1 was fixed: a file without it speaks English.
    try:
        language = parse_language(_get(doc, "language", str, "")) if "language" in doc else None
    except LanguageError as e:
        raise StationConfigError(f"language: {e}") from e
    return StationConfig(
        language=language or DEFAULT_LANGUAGE,
        name=_get(doc, "name", str, ""),
        policy=policy,
        sync_interval_s=_get(doc, "sync_interval_s", int, ""),
        kiosk_port=_get(doc, "kiosk_port", int, ""),
        dedupe_s=float(_get(doc, "dedupe_s", (int, float), "")),
        # Optional: files written before shared replay memory existed keep their meaning.
        replay=_get(doc, "replay", str, "") if "replay" in doc else "memory",
        insecure_accept_self_cosigned_logs=_insecure(doc),
        sync_pace=_sync_pace(doc),
    )


def _sync_pace(doc: dict[str, Any]) -> SourcePace:
    """The optional `[sync_pace]` table: any of min_s, max_avg_s, cap_s (seconds)."""
    if "sync_pace" not in doc:
        return SourcePace()
    table = _get(doc, "sync_pace", dict, "")
    unknown = sorted(set(table) - {"min_s", "max_avg_s", "cap_s"})
    if unknown:
        raise StationConfigError(f"sync_pace: expected min_s, max_avg_s, cap_s, found {unknown}")
    given = {k: float(_get(table, k, (int, float), "sync_pace.")) for k in table}
    try:
        return SourcePace(**given)
    except ValueError as e:
        raise StationConfigError(f"sync_pace: {e}") from e


def _insecure(doc: dict[str, Any]) -> bool:
    value = doc.get("insecure_accept_self_cosigned_logs", False)
    if not isinstance(value, bool):
        raise StationConfigError(
            f"insecure_accept_self_cosigned_logs: expected true or false, found {value!r}"
        )
    return value


@dataclass(frozen=True)
class StationDir:
    """The files of one station folder."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def consortium(self) -> Path:
        return self.root / CONSORTIUM_FILE

    @property
    def state_db(self) -> Path:
        return self.root / STATE_DB

    @property
    def scan_log(self) -> Path:
        return self.root / SCAN_LOG_DB

    def load(self) -> StationConfig:
        if not self.config.is_file():
            raise StationConfigError(
                f"no station at {self.root}: run `healthbridge verifier init` first"
            )
        return parse_config(self.config.read_bytes())

    def save_language(self, language: Language) -> None:
        """Keep the language staff chose on the kiosk in station.toml (a restart keeps
        it); the rest of the file is rewritten as it was read."""
        from dataclasses import replace

        try:
            self.config.write_text(render_config(replace(self.load(), language=language)))
        except OSError as e:
            raise StationConfigError(f"cannot write {self.config}: {e}") from e


DEFAULT_CONFIG = StationConfig()
__all__ = ["DEFAULT_CONFIG", "DEFAULT_MAX_SYNC_AGE_S", "StationConfig", "StationDir"]
