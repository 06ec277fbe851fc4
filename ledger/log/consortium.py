"""The consortium file: the trust root every node and station is handed out of band.

A TOML document naming the member regions (their log origin and log verifier key,
their witness name and verifier key, their region root public key and node URL) and
the cosignature policy a checkpoint must satisfy before anyone trusts it. The policy
has C2SP tlog-policy semantics (witnesses, groups with an `all` / `any` / k threshold,
one quorum), expressed in TOML; `render_tlog_policy` writes it in the C2SP text form.

A member may shard its log in time (`[members.shards]`: period, epoch, grace, longest
credential validity; ledger.log.shards): its log is then the sequence of logs
`<log_origin>/<k>`, each signed by the one log key under the shard's origin as key name
(the key hash is recomputed per name, C2SP signed-note), and the base origin itself is
no log. `log_for_origin` resolves any origin to its member and shard.

`parse_consortium` / `render_consortium` are the symmetric pair; `load_consortium`
and `write_consortium` add the file I/O. Everything is validated on load and every
error names the offending field. This module verifies no signature itself: it only
checks that the keys are well formed (C2SP signed-note vkey syntax and key hash).
"""

from __future__ import annotations

import base64
import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ledger.log.errors import LedgerError
from ledger.log.shards import Shard, ShardError, ShardPlan, ShardSchedule

CONSORTIUM_VERSION = 1
MAX_CONSORTIUM_FILE_BYTES = 1 << 20  # bytes; a trust root is small
MAX_MEMBERS = 64  # members per consortium
REGION_RE = re.compile(r"^[A-Z]{2,8}$")
# signed-note: a key name is non-empty, has no whitespace and no "+".
KEY_NAME_RE = re.compile(r"^[^\s+]+$")
URL_RE = re.compile(r"^https?://[^\s]+$")
ED25519_KEY_BYTES = 32  # bytes, RFC 8032
# signed-note signature types: 0x01 Ed25519 (log keys, C2SP tlog-checkpoint);
# 0x04 cosignature/v1 (witness keys, C2SP tlog-cosignature).
NOTE_TYPE_ED25519 = 0x01
NOTE_TYPE_COSIGNATURE_V1 = 0x04
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")  # RFC 8410 §4
THRESHOLD_ALL = "all"
THRESHOLD_ANY = "any"
QUORUM_NONE = "none"
DEFAULT_GROUP = "members"


class ConsortiumError(LedgerError, ValueError):
    """A consortium file that cannot be trusted: `field` names the bad field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


class QuorumError(LedgerError):
    """A checkpoint's cosignatures do not satisfy the consortium's policy."""


@dataclass(frozen=True)
class VKey:
    """A C2SP signed-note verifier key: `<name>+<key hash hex>+<base64(type || key)>`."""

    name: str
    key_hash: bytes  # 4 bytes
    sig_type: int
    public_key: bytes  # raw Ed25519 public key, 32 bytes
    text: str

    @classmethod
    def parse(cls, text: str, field_name: str, allowed_types: Iterable[int]) -> VKey:
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise ConsortiumError(field_name, f"expected <name>+<hash>+<key>, found {text!r}")
        name, hash_hex, key_b64 = parts
        if not KEY_NAME_RE.fullmatch(name):
            raise ConsortiumError(field_name, f"bad key name {name!r}")
        if not re.fullmatch(r"[0-9a-f]{8}", hash_hex):
            raise ConsortiumError(field_name, f"key hash must be 8 hex digits, found {hash_hex!r}")
        try:
            raw = base64.b64decode(key_b64, validate=True)
        except ValueError as e:
            raise ConsortiumError(field_name, "key is not valid base64") from e
        allowed = tuple(allowed_types)
        if len(raw) != 1 + ED25519_KEY_BYTES or raw[0] not in allowed:
            raise ConsortiumError(
                field_name,
                f"expected a type {[hex(t) for t in allowed]} Ed25519 key of "
                f"{1 + ED25519_KEY_BYTES} bytes, found {len(raw)} bytes"
                + (f" of type {raw[0]:#04x}" if raw else ""),
            )
        # signed-note: key hash = SHA-256(name || "\n" || type || key)[:4]
        expected = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
        if expected.hex() != hash_hex:
            raise ConsortiumError(
                field_name, f"key hash mismatch: expected {expected.hex()}, found {hash_hex}"
            )
        return cls(name, expected, raw[0], raw[1:], text)

    def renamed(self, name: str) -> VKey:
        """The same public key under another key name (a shard's origin): the key hash
        covers the name, so it is recomputed (C2SP signed-note)."""
        raw = bytes([self.sig_type]) + self.public_key
        key_hash = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
        text = f"{name}+{key_hash.hex()}+{base64.b64encode(raw).decode()}"
        return VKey(name, key_hash, self.sig_type, self.public_key, text)


@dataclass(frozen=True)
class Member:
    """One consortium member: a region running a log and a witness, or a witness only."""

    id: str
    display_name: str
    witness: VKey
    node_url: str
    log: VKey | None = None
    log_origin: str | None = None
    root_public_key_der: bytes | None = None  # Ed25519 SPKI DER
    mirror_urls: tuple[str, ...] = ()
    shards: ShardPlan | None = None  # temporal shards of its log (ledger.log.shards)

    @property
    def runs_log(self) -> bool:
        return self.log is not None

    def shard_of_origin(self, origin: str) -> Shard | None:
        """The shard of this member's log named by `origin`, None if it names none."""
        if self.shards is None:
            return None
        try:
            return self.shards.schedule.parse_origin(origin)
        except ShardError:
            return None

    def log_vkey_for(self, origin: str) -> VKey | None:
        """The verifier key of the log `origin` of this member (its own log, or one of
        its shards: the log key under the shard's origin), None when it runs no such
        log. A sharded member's base origin is no log."""
        if self.log is None:
            return None
        if self.shards is None:
            return self.log if origin == self.log_origin else None
        shard = self.shard_of_origin(origin)
        return None if shard is None else self.log.renamed(shard.origin)

    @property
    def root_public_key_raw(self) -> bytes:
        if self.root_public_key_der is None:
            raise ConsortiumError(f"members.{self.id}.root_public_key", "witness-only member")
        return self.root_public_key_der[len(ED25519_SPKI_PREFIX) :]


@dataclass(frozen=True)
class Group:
    """A tlog-policy group: satisfied when `threshold` of its members are."""

    name: str
    threshold: int  # resolved count; "all" = len(members), "any" = 1
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    """A tlog-policy quorum over the members' witnesses (named by member id)."""

    groups: tuple[Group, ...]
    quorum: str  # a group name, a member id, or "none"

    def satisfied_by(self, cosigners: Iterable[str]) -> bool:
        """Whether cosignatures from these member ids meet the quorum."""
        signed = frozenset(cosigners)
        if self.quorum == QUORUM_NONE:
            return True
        groups = {g.name: g for g in self.groups}

        def ok(name: str) -> bool:
            g = groups.get(name)
            if g is None:
                return name in signed
            return sum(1 for m in g.members if ok(m)) >= g.threshold

        return ok(self.quorum)

    def check(self, cosigners: Iterable[str]) -> None:
        """Raise QuorumError unless the quorum is met (verify by raising)."""
        signed = sorted(frozenset(cosigners))
        if not self.satisfied_by(signed):
            raise QuorumError(
                f"cosignature quorum {self.quorum!r} not met: expected {self.describe()}, "
                f"found cosignatures from {signed or 'no witness'}"
            )

    def quorum_time(self, cosigned_at: Mapping[str, int]) -> int:
        """The newest time at which a quorum of these cosignatures vouches for a view.

        `cosigned_at` maps member id -> cosignature timestamp (C2SP tlog-cosignature,
        seconds). The answer is the largest t such that the cosigners with a timestamp
        >= t alone meet the quorum: a stale cosignature from a member the quorum does
        not need never makes a view look older, and a fresh one from a member it does
        not need never makes it look newer. Raise QuorumError when no t works."""
        self.check(cosigned_at)
        if self.quorum == QUORUM_NONE:
            return max(cosigned_at.values(), default=0)
        for t in sorted(set(cosigned_at.values()), reverse=True):
            if self.satisfied_by(m for m, ts in cosigned_at.items() if ts >= t):
                return t
        raise QuorumError("unreachable: the quorum is met by every cosignature")

    def single_member_suffices(self, member_id: str) -> bool:
        """Whether `member_id`'s witness alone (or no witness at all) meets the quorum:
        then the member that runs a log vouches for its own forks and no other member
        checks it (C2SP tlog-witness: witnesses protect against a log's split views
        only when the log cannot pick them)."""
        return self.quorum == QUORUM_NONE or self.satisfied_by([member_id])

    def describe(self) -> str:
        groups = {g.name: g for g in self.groups}
        g = groups.get(self.quorum)
        if g is None:
            return self.quorum
        return f"{g.threshold} of {list(g.members)}"


@dataclass(frozen=True)
class Consortium:
    """The validated consortium: members by id and the cosignature policy."""

    version: int
    name: str
    members: tuple[Member, ...]
    policy: Policy
    # Every checkpoint must commit the region's revocation snapshot (the
    # `healthbridge/revocations` extension line, docs/ledger-protocol.md §8): compact
    # stations read revocations only through it, so witnesses refuse a checkpoint
    # without it.
    require_revocation_commitment: bool = False
    _by_id: Mapping[str, Member] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {m.id: m for m in self.members})

    def member(self, member_id: str) -> Member:
        try:
            return self._by_id[member_id]
        except KeyError:
            raise ConsortiumError("members", f"no member {member_id!r}") from None

    def regions(self) -> tuple[str, ...]:
        """Ids of members that run a log (the regions), in file order."""
        return tuple(m.id for m in self.members if m.runs_log)

    def log_member_by_origin(self, origin: str) -> Member | None:
        """The member running the log `origin` (its own log or one of its shards)."""
        found = self.log_for_origin(origin)
        return None if found is None else found[0]

    def log_for_origin(self, origin: str) -> tuple[Member, Shard | None, VKey] | None:
        """The member, shard (None when unsharded) and verifier key of log `origin`."""
        for m in self.members:
            vkey = m.log_vkey_for(origin)
            if vkey is not None:
                return m, m.shard_of_origin(origin), vkey
        return None

    def witness_member_by_name(self, name: str) -> Member | None:
        return next((m for m in self.members if m.witness.name == name), None)

    @classmethod
    def load(cls, path: str | Path) -> Consortium:
        return load_consortium(path)


def _req(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in table:
        raise ConsortiumError(f"{where}.{key}", "missing")
    value = table[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConsortiumError(
            f"{where}.{key}", f"expected {kind.__name__}, found {type(value).__name__}"
        )
    return value


def _parse_member(raw: Any, i: int) -> Member:
    where = f"members[{i}]"
    if not isinstance(raw, dict):
        raise ConsortiumError(where, "expected a table")
    known = {
        "id",
        "name",
        "witness_only",
        "log_origin",
        "log_vkey",
        "witness_vkey",
        "root_public_key",
        "node_url",
        "mirror_urls",
        "shards",
    }
    extra = sorted(set(raw) - known)
    if extra:
        raise ConsortiumError(f"{where}.{extra[0]}", "unknown field")
    member_id = _req(raw, "id", str, where)
    if not REGION_RE.fullmatch(member_id):
        raise ConsortiumError(f"{where}.id", f"expected 2-8 capital letters, found {member_id!r}")
    display = _req(raw, "name", str, where)
    witness_only = raw.get("witness_only", False)
    if not isinstance(witness_only, bool):
        raise ConsortiumError(f"{where}.witness_only", "expected a boolean")
    witness = VKey.parse(
        _req(raw, "witness_vkey", str, where),
        f"{where}.witness_vkey",
        (NOTE_TYPE_COSIGNATURE_V1, NOTE_TYPE_ED25519),
    )
    node_url = _req(raw, "node_url", str, where).rstrip("/")
    if not URL_RE.fullmatch(node_url):
        raise ConsortiumError(f"{where}.node_url", f"expected an http(s) URL, found {node_url!r}")
    mirrors = raw.get("mirror_urls", [])
    if not isinstance(mirrors, list) or not all(
        isinstance(u, str) and URL_RE.fullmatch(u) for u in mirrors
    ):
        raise ConsortiumError(f"{where}.mirror_urls", "expected a list of http(s) URLs")
    if witness_only:
        for key in ("log_origin", "log_vkey", "root_public_key", "shards"):
            if key in raw:
                raise ConsortiumError(f"{where}.{key}", "a witness-only member runs no log")
        return Member(member_id, display, witness, node_url, mirror_urls=tuple(mirrors))
    origin = _req(raw, "log_origin", str, where)
    if not origin or any(c.isspace() for c in origin):
        raise ConsortiumError(f"{where}.log_origin", "must be non-empty without whitespace")
    log = VKey.parse(_req(raw, "log_vkey", str, where), f"{where}.log_vkey", (NOTE_TYPE_ED25519,))
    # C2SP tlog-checkpoint: the log's key name is its origin.
    if log.name != origin:
        raise ConsortiumError(
            f"{where}.log_vkey", f"key name must equal log_origin {origin!r}, found {log.name!r}"
        )
    root_b64 = _req(raw, "root_public_key", str, where)
    try:
        root = base64.b64decode(root_b64, validate=True)
    except ValueError as e:
        raise ConsortiumError(f"{where}.root_public_key", "not valid base64") from e
    if len(root) == ED25519_KEY_BYTES:
        root = ED25519_SPKI_PREFIX + root
    if len(root) != len(ED25519_SPKI_PREFIX) + ED25519_KEY_BYTES or not root.startswith(
        ED25519_SPKI_PREFIX
    ):
        raise ConsortiumError(
            f"{where}.root_public_key",
            f"expected an Ed25519 key (32 raw bytes or DER SPKI), found {len(root)} bytes",
        )
    shards = _parse_shards(raw.get("shards"), origin, f"{where}.shards")
    return Member(
        member_id,
        display,
        witness,
        node_url,
        log=log,
        log_origin=origin,
        root_public_key_der=root,
        mirror_urls=tuple(mirrors),
        shards=shards,
    )


SHARD_FIELDS = ("period_s", "epoch", "grace_s", "max_validity_s")


def _parse_shards(raw: Any, origin: str, where: str) -> ShardPlan | None:
    """`[members.shards]`: period_s and max_validity_s required, epoch and grace_s
    optional; the base origin is the member's log_origin."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConsortiumError(where, "expected a table")
    extra = sorted(set(raw) - set(SHARD_FIELDS))
    if extra:
        raise ConsortiumError(f"{where}.{extra[0]}", "unknown field")
    period = _req(raw, "period_s", int, where)
    max_validity = _req(raw, "max_validity_s", int, where)
    values = {"epoch": 0, "grace_s": 300}
    for key in values:
        if key in raw:
            values[key] = _req(raw, key, int, where)
    try:
        schedule = ShardSchedule(origin, period, values["epoch"])
        return ShardPlan(schedule, values["grace_s"], max_validity)
    except ShardError as e:
        raise ConsortiumError(where, str(e)) from e


def _threshold(value: Any, n: int, where: str) -> int:
    if value == THRESHOLD_ALL:
        return n
    if value == THRESHOLD_ANY:
        return 1
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= n:
        return value
    raise ConsortiumError(where, f"expected 'all', 'any' or 1..{n}, found {value!r}")


def _parse_policy(raw: Any, members: tuple[Member, ...]) -> Policy:
    ids = [m.id for m in members]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConsortiumError("policy", "expected a table")
    extra = sorted(set(raw) - {"threshold", "witnesses", "groups", "quorum"})
    if extra:
        raise ConsortiumError(f"policy.{extra[0]}", "unknown field")
    if "groups" in raw:
        if "threshold" in raw or "witnesses" in raw:
            raise ConsortiumError("policy", "give either groups + quorum or threshold")
        groups: list[Group] = []
        names = set(ids)
        for i, g in enumerate(raw["groups"] if isinstance(raw["groups"], list) else [None]):
            where = f"policy.groups[{i}]"
            if not isinstance(g, dict):
                raise ConsortiumError(where, "expected a table")
            gname = _req(g, "name", str, where)
            if gname in names or gname == QUORUM_NONE:
                raise ConsortiumError(f"{where}.name", f"duplicate name {gname!r}")
            gmembers = _req(g, "members", list, where)
            # tlog-policy: a group only references names defined before it.
            for m in gmembers:
                if m not in names or m == QUORUM_NONE:
                    raise ConsortiumError(f"{where}.members", f"unknown name {m!r}")
            if len(set(gmembers)) != len(gmembers) or not gmembers:
                raise ConsortiumError(f"{where}.members", "must be non-empty and distinct")
            t = _threshold(g.get("threshold", THRESHOLD_ALL), len(gmembers), f"{where}.threshold")
            groups.append(Group(gname, t, tuple(gmembers)))
            names.add(gname)
        quorum = _req(raw, "quorum", str, "policy")
        if quorum not in names and quorum != QUORUM_NONE:
            raise ConsortiumError("policy.quorum", f"unknown name {quorum!r}")
        return Policy(tuple(groups), quorum)
    if "quorum" in raw:
        raise ConsortiumError("policy.quorum", "only with policy.groups")
    witnesses = raw.get("witnesses", ids)
    if not isinstance(witnesses, list) or not witnesses:
        raise ConsortiumError("policy.witnesses", "expected a non-empty list of member ids")
    for w in witnesses:
        if w not in ids:
            raise ConsortiumError("policy.witnesses", f"unknown member {w!r}")
    if len(set(witnesses)) != len(witnesses):
        raise ConsortiumError("policy.witnesses", "duplicate member")
    t = _threshold(raw.get("threshold", THRESHOLD_ALL), len(witnesses), "policy.threshold")
    return Policy((Group(DEFAULT_GROUP, t, tuple(witnesses)),), DEFAULT_GROUP)


def parse_consortium(data: str | bytes) -> Consortium:
    """Parse and validate a consortium file's text; raise ConsortiumError naming the field."""
    if isinstance(data, bytes):
        if len(data) > MAX_CONSORTIUM_FILE_BYTES:
            raise ConsortiumError("file", f"larger than {MAX_CONSORTIUM_FILE_BYTES} bytes")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConsortiumError("file", "not UTF-8") from e
    try:
        doc = tomllib.loads(data)
    except tomllib.TOMLDecodeError as e:
        raise ConsortiumError("file", f"not valid TOML: {e}") from e
    extra = sorted(
        set(doc) - {"version", "name", "members", "policy", "require_revocation_commitment"}
    )
    if extra:
        raise ConsortiumError(extra[0], "unknown field")
    version = _req(doc, "version", int, "consortium").__int__()
    if version != CONSORTIUM_VERSION:
        raise ConsortiumError("version", f"expected {CONSORTIUM_VERSION}, found {version}")
    name = doc.get("name", "healthbridge")
    if not isinstance(name, str):
        raise ConsortiumError("name", "expected a string")
    raw_members = _req(doc, "members", list, "consortium")
    if not 1 <= len(raw_members) <= MAX_MEMBERS:
        raise ConsortiumError("members", f"expected 1..{MAX_MEMBERS} members")
    members = tuple(_parse_member(m, i) for i, m in enumerate(raw_members))
    for attr, label in (
        ("id", "id"),
        ("log_origin", "log_origin"),
        ("node_url", "node_url"),
    ):
        seen: set[object] = set()
        for i, m in enumerate(members):
            v = getattr(m, attr)
            if v is not None and v in seen:
                raise ConsortiumError(f"members[{i}].{label}", f"duplicate {v!r}")
            seen.add(v)
    keys: set[bytes] = set()
    wnames: set[str] = set()
    for i, m in enumerate(members):
        # tlog-policy: two vkeys wrapping one public key are duplicates.
        for vk, label in ((m.log, "log_vkey"), (m.witness, "witness_vkey")):
            if vk is None:
                continue
            if vk.public_key in keys:
                raise ConsortiumError(f"members[{i}].{label}", "public key used twice")
            keys.add(vk.public_key)
        if m.witness.name in wnames:
            raise ConsortiumError(f"members[{i}].witness_vkey", "duplicate witness name")
        wnames.add(m.witness.name)
    if not any(m.runs_log for m in members):
        raise ConsortiumError("members", "at least one member must run a log")
    policy = _parse_policy(doc.get("policy"), members)
    required = doc.get("require_revocation_commitment", False)
    if not isinstance(required, bool):
        raise ConsortiumError("require_revocation_commitment", "expected true or false")
    return Consortium(version, name, members, policy, required)


def load_consortium(path: str | Path) -> Consortium:
    """Read and validate a consortium file."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_CONSORTIUM_FILE_BYTES + 1)
    except OSError as e:
        raise ConsortiumError("file", f"cannot read {p}: {e.strerror}") from e
    return parse_consortium(data)


def _member_doc(m: Member) -> dict[str, Any]:
    d: dict[str, Any] = {"id": m.id, "name": m.display_name}
    if m.log is None:
        d["witness_only"] = True
    else:
        assert m.root_public_key_der is not None
        d["log_origin"] = m.log_origin
        d["log_vkey"] = m.log.text
        d["root_public_key"] = base64.b64encode(m.root_public_key_der).decode()
    d["witness_vkey"] = m.witness.text
    d["node_url"] = m.node_url
    if m.mirror_urls:
        d["mirror_urls"] = list(m.mirror_urls)
    if m.shards is not None:
        d["shards"] = {
            "period_s": m.shards.schedule.period_s,
            "epoch": m.shards.schedule.epoch,
            "grace_s": m.shards.grace_s,
            "max_validity_s": m.shards.max_validity_s,
        }
    return d


def _threshold_doc(g: Group) -> int | str:
    if g.threshold == len(g.members):
        return THRESHOLD_ALL
    return g.threshold


def render_consortium(c: Consortium) -> str:
    """The TOML text of a consortium; parse_consortium(render_consortium(c)) == c."""
    doc: dict[str, Any] = {
        "version": c.version,
        "name": c.name,
        "members": [_member_doc(m) for m in c.members],
    }
    if c.require_revocation_commitment:
        doc["require_revocation_commitment"] = True
    p = c.policy
    if len(p.groups) == 1 and p.quorum == p.groups[0].name == DEFAULT_GROUP:
        g = p.groups[0]
        doc["policy"] = {"threshold": _threshold_doc(g), "witnesses": list(g.members)}
    else:
        doc["policy"] = {
            "groups": [
                {"name": g.name, "threshold": _threshold_doc(g), "members": list(g.members)}
                for g in p.groups
            ],
            "quorum": p.quorum,
        }
    return tomli_w.dumps(doc)


def write_consortium(path: str | Path, c: Consortium) -> None:
    """Write a consortium file (public data: no secrets, ordinary permissions)."""
    Path(path).write_text(render_consortium(c), encoding="utf-8")


def build_consortium(
    members: Iterable[dict[str, Any]],
    *,
    threshold: int | str = THRESHOLD_ALL,
    witnesses: list[str] | None = None,
    name: str = "healthbridge",
    require_revocation_commitment: bool = False,
) -> Consortium:
    """Build (and validate) a consortium from member tables as they appear in the file;
    for tools and the demo. Root keys may be bytes (raw or DER)."""
    docs = []
    for m in members:
        d = dict(m)
        if isinstance(d.get("root_public_key"), bytes):
            d["root_public_key"] = base64.b64encode(d["root_public_key"]).decode()
        docs.append(d)
    policy: dict[str, Any] = {"threshold": threshold}
    if witnesses is not None:
        policy["witnesses"] = witnesses
    doc = {"version": CONSORTIUM_VERSION, "name": name, "members": docs, "policy": policy}
    if require_revocation_commitment:
        doc["require_revocation_commitment"] = True
    return parse_consortium(tomli_w.dumps(doc))


def render_tlog_policy(c: Consortium) -> str:
    """The policy in C2SP tlog-policy text form (logs, witnesses, groups, quorum)."""
    lines = []
    for m in c.members:
        if m.log is not None:
            lines.append(f"log {m.log.text} {m.node_url}")
    for m in c.members:
        lines.append(f"witness {m.id} {m.witness.text} {m.node_url}")
    for g in c.policy.groups:
        t = _threshold_doc(g)
        lines.append(f"group {g.name} {t} {' '.join(g.members)}")
    lines.append(f"quorum {c.policy.quorum}")
    return "\n".join(lines) + "\n"
