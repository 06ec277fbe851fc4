"""Consortium file: load, validate (errors name the field), round-trip, quorum policy."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.log.consortium import (
    ConsortiumError,
    QuorumError,
    build_consortium,
    load_consortium,
    parse_consortium,
    render_consortium,
    render_tlog_policy,
    write_consortium,
)


def make_vkey(name: str, sig_type: int) -> str:
    pub = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    raw = bytes([sig_type]) + pub
    h = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex()
    return f"{name}+{h}+{base64.b64encode(raw).decode()}"


def member(mid: str, port: int, witness_only: bool = False) -> dict[str, object]:
    lower = mid.lower()
    d: dict[str, object] = {
        "id": mid,
        "name": f"Region {mid}",
        "witness_vkey": make_vkey(f"{lower}.example/witness", 0x04),
        "node_url": f"http://127.0.0.1:{port}",
    }
    if witness_only:
        d["witness_only"] = True
    else:
        root = Ed25519PrivateKey.generate().public_key()
        d["log_origin"] = f"{lower}.example/log"
        d["log_vkey"] = make_vkey(f"{lower}.example/log", 0x01)
        d["root_public_key"] = root.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return d


def two_regions(**kw: object):
    return build_consortium([member("GD", 8001), member("MO", 8002)], **kw)  # type: ignore[arg-type]


def test_consortium_round_trips_through_toml(tmp_path: Path) -> None:
    c = build_consortium(
        [member("GD", 8001), member("MO", 8002), member("OBS", 8003, witness_only=True)],
        threshold=2,
    )
    assert parse_consortium(render_consortium(c)) == c
    path = tmp_path / "consortium.toml"
    write_consortium(path, c)
    loaded = load_consortium(path)
    assert loaded == c
    assert loaded.regions() == ("GD", "MO")
    assert loaded.member("OBS").runs_log is False
    assert loaded.log_member_by_origin("gd.example/log") == loaded.member("GD")
    assert len(loaded.member("GD").root_public_key_raw) == 32


def test_default_policy_needs_every_member_witness() -> None:
    c = two_regions()
    assert c.policy.satisfied_by({"GD", "MO"})
    assert not c.policy.satisfied_by({"GD"})
    with pytest.raises(QuorumError, match="2 of"):
        c.policy.check({"GD"})
    c.policy.check({"GD", "MO", "XX"})


def test_two_of_three_with_a_witness_only_member() -> None:
    c = build_consortium(
        [member("GD", 8001), member("MO", 8002), member("OBS", 8003, witness_only=True)],
        threshold=2,
    )
    assert c.policy.satisfied_by({"GD", "OBS"})
    assert not c.policy.satisfied_by({"OBS"})
    assert "group members 2 GD MO OBS" in render_tlog_policy(c)
    assert render_tlog_policy(c).endswith("quorum members\n")


def test_nested_groups_follow_tlog_policy_semantics() -> None:
    c = two_regions()
    text = render_consortium(c).replace(
        '[policy]\nthreshold = "all"\nwitnesses = [\n    "GD",\n    "MO",\n]\n', ""
    )
    text += (
        '[policy]\nquorum = "both"\n'
        '[[policy.groups]]\nname = "mainland"\nthreshold = "any"\nmembers = ["GD"]\n'
        '[[policy.groups]]\nname = "both"\nthreshold = "all"\nmembers = ["mainland", "MO"]\n'
    )
    c2 = parse_consortium(text)
    assert c2.policy.satisfied_by({"GD", "MO"})
    assert not c2.policy.satisfied_by({"MO"})
    assert parse_consortium(render_consortium(c2)) == c2


def _text_with(replace: str, by: str) -> str:
    text = render_consortium(two_regions())
    assert replace in text
    return text.replace(replace, by, 1)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("version = 1", "version = 2", "version"),
        ('id = "GD"', 'id = "gd"', "members[0].id"),
        ('id = "MO"', 'id = "GD"', "members[1].id"),
        ('node_url = "http://127.0.0.1:8001"', 'node_url = "ftp://x"', "members[0].node_url"),
        ('log_origin = "gd.example/log"', 'log_origin = "other"', "members[0].log_vkey"),
        ('threshold = "all"', "threshold = 3", "policy.threshold"),
        ('name = "Region GD"', 'name = "Region GD"\ncolour = "red"', "members[0].colour"),
    ],
)
def test_bad_field_is_named(old: str, new: str, field: str) -> None:
    with pytest.raises(ConsortiumError) as info:
        parse_consortium(_text_with(old, new))
    assert info.value.field == field


def test_tampered_vkey_hash_is_refused() -> None:
    c = two_regions()
    vk = c.member("GD").log
    assert vk is not None
    bad = vk.text.split("+")
    bad[1] = "00000000" if bad[1] != "00000000" else "11111111"
    with pytest.raises(ConsortiumError, match="key hash mismatch") as info:
        parse_consortium(render_consortium(c).replace(vk.text, "+".join(bad)))
    assert info.value.field == "members[0].log_vkey"


def test_same_public_key_twice_is_refused() -> None:
    c = two_regions()
    gd, mo = c.member("GD"), c.member("MO")
    text = render_consortium(c).replace(mo.witness.text, gd.witness.text)
    with pytest.raises(ConsortiumError):
        parse_consortium(text)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xfe", b"version = [", b"version = 1\n", b"version = 1\nmembers = []\n"],
)
def test_malformed_files_raise_typed_errors(data: bytes) -> None:
    with pytest.raises(ConsortiumError):
        parse_consortium(data)


def test_unreadable_file_is_a_consortium_error(tmp_path: Path) -> None:
    with pytest.raises(ConsortiumError, match="cannot read"):
        load_consortium(tmp_path / "absent.toml")


def test_witness_only_member_may_not_claim_a_log() -> None:
    m = member("OBS", 8003, witness_only=True)
    m["log_origin"] = "obs.example/log"
    with pytest.raises(ConsortiumError) as info:
        build_consortium([member("GD", 8001), m])
    assert info.value.field == "members[1].log_origin"


def test_required_revocation_commitment_round_trips_and_is_typed() -> None:
    from ledger.log.consortium import (
        ConsortiumError,
        build_consortium,
        parse_consortium,
        render_consortium,
    )
    from tests.support.ledger_joint import member_keys

    members = [member_keys("GD").table(), member_keys("MO").table()]
    c = build_consortium(members, require_revocation_commitment=True)
    assert c.require_revocation_commitment
    assert parse_consortium(render_consortium(c)) == c
    plain = build_consortium(members)
    assert "require_revocation_commitment" not in render_consortium(plain)
    text = render_consortium(c).replace(
        "require_revocation_commitment = true", 'require_revocation_commitment = "yes"'
    )
    with pytest.raises(ConsortiumError, match="require_revocation_commitment"):
        parse_consortium(text)


def test_quorum_time_is_the_newest_time_a_quorum_vouches_for() -> None:
    from ledger.log.consortium import QuorumError, build_consortium
    from tests.support.ledger_joint import member_keys

    members = [member_keys(m).table() for m in ("GD", "MO", "OBS")]
    everyone = build_consortium(members).policy
    assert everyone.quorum_time({"GD": 100, "MO": 50, "OBS": 70}) == 50
    two = build_consortium(members, threshold=2).policy
    # A stale cosignature the quorum does not need never makes the view look older.
    assert two.quorum_time({"GD": 100, "MO": 5, "OBS": 70}) == 70
    with pytest.raises(QuorumError):
        everyone.quorum_time({"GD": 100, "MO": 50})
    assert two.single_member_suffices("GD") is False
    assert build_consortium(members, threshold="any").policy.single_member_suffices("GD")


# -- temporal shards ([members.shards], ledger.log.shards) -----------------------------

DAY_S = 86_400


def sharded(mid: str, port: int, **shards: object) -> dict[str, object]:
    d = member(mid, port)
    d["shards"] = {"period_s": DAY_S, "epoch": 1_800_000_000, "max_validity_s": 7 * DAY_S,
                   **shards}  # fmt: skip
    return d


def test_shard_table_round_trips_and_names_each_shard_key(tmp_path: Path) -> None:
    c = build_consortium([sharded("GD", 8001, grace_s=120), member("MO", 8002)])
    assert parse_consortium(render_consortium(c)) == c
    write_consortium(tmp_path / "c.toml", c)
    assert load_consortium(tmp_path / "c.toml") == c
    gd, mo = c.member("GD"), c.member("MO")
    assert gd.shards is not None and gd.shards.grace_s == 120
    assert gd.shards.schedule.base_origin == gd.log_origin and mo.shards is None
    # Shard k's checkpoints are signed by the one log key under the name <origin>/k.
    found = c.log_for_origin("gd.example/log/3")
    assert found is not None
    m, shard, vkey = found
    assert m.id == "GD" and shard is not None and shard.number == 3
    assert vkey.name == "gd.example/log/3" and vkey.public_key == gd.log.public_key  # type: ignore[union-attr]
    raw = bytes([vkey.sig_type]) + vkey.public_key
    assert vkey.key_hash == hashlib.sha256(vkey.name.encode() + b"\n" + raw).digest()[:4]
    # The base origin of a sharded member is no log; an unsharded member's still is.
    assert c.log_for_origin("gd.example/log") is None
    assert c.log_for_origin("gd.example/log/03") is None
    assert c.log_member_by_origin("mo.example/log") == mo
    assert c.log_for_origin("mo.example/log/1") is None


@pytest.mark.parametrize(
    ("shards", "field"),
    [
        ({"period_s": 60}, "members[0].shards"),  # below MIN_PERIOD_S
        ({"period_s": "daily"}, "members[0].shards.period_s"),
        ({"epoch": -5}, "members[0].shards"),
        ({"grace_s": 10**9}, "members[0].shards"),
        ({"max_validity_s": 0}, "members[0].shards"),
        ({"colour": 1}, "members[0].shards.colour"),
        ({"period_s": 0}, "members[0].shards"),
        ({"period_s": -DAY_S}, "members[0].shards"),
        ({"period_s": True}, "members[0].shards.period_s"),
        ({"grace_s": -1}, "members[0].shards"),
        # Shorter than the verifiers' clock-skew leeway: a station would forget a
        # shard's revocations while still admitting its last credentials.
        ({"grace_s": 0}, "members[0].shards"),
        ({"grace_s": 59}, "members[0].shards"),
        ({"grace_s": 8 * DAY_S}, "members[0].shards"),
        ({"epoch": 1.5}, "members[0].shards.epoch"),  # not a whole second
        ({"epoch": 10**30}, "members[0].shards"),  # past 2200: shard ends overflow int64
        ({"max_validity_s": -1}, "members[0].shards"),
        ({"max_validity_s": 367 * DAY_S}, "members[0].shards"),
        # Hourly shards for year-long credentials: ~8,800 logs for every station to follow.
        ({"period_s": 3_600, "max_validity_s": 366 * DAY_S}, "members[0].shards"),
    ],
)
def test_bad_shard_tables_are_refused_naming_the_field(
    shards: dict[str, object], field: str
) -> None:
    with pytest.raises(ConsortiumError) as e:
        build_consortium([sharded("GD", 8001, **shards), member("MO", 8002)])
    assert e.value.field == field


def test_shard_table_missing_validity_or_on_witness_only_member_is_refused() -> None:
    d = sharded("GD", 8001)
    del d["shards"]["max_validity_s"]  # type: ignore[attr-defined]
    with pytest.raises(ConsortiumError) as e:
        build_consortium([d, member("MO", 8002)])
    assert e.value.field == "members[0].shards.max_validity_s"
    w = member("OBS", 8003, witness_only=True)
    w["shards"] = {"period_s": DAY_S, "max_validity_s": DAY_S}
    with pytest.raises(ConsortiumError) as e:
        build_consortium([member("GD", 8001), w])
    assert e.value.field == "members[1].shards"
