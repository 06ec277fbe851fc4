"""An issuance's log entry goes pending -> sequenced -> cosigned against the real
checkpoints of GD's node, cosigned by GD's and MO's witnesses over real HTTP; with MO's
node down the quorum is not met and the entry is never reported cosigned. Plus the pure
checkpoint assessment on forged or foreign checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from issuer.admin import accounts_db
from issuer.admin.accounts import Role
from issuer.admin.services import Actor, AdminService, EntryState, EntryStatus
from issuer.app import create_app
from issuer.errors import LedgerUnavailableError
from issuer.ledger_state import ConsortiumCheckpoints, assess_checkpoint
from issuer.testing import enrol_directly, new_device, serve
from ledger.log.checkpoint import Checkpoint, signed_checkpoint
from ledger.log.consortium import Consortium
from ledger.log.note import NoteSigner
from tests.support.issuer_joint import JointWorld, joint_world, wait_for

pytestmark = pytest.mark.slow
GD_ADMIN = Actor("admin", "GD", frozenset({Role.OPERATOR, Role.KEY_ADMIN}))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[JointWorld]:
    with joint_world(tmp_path) as w:
        yield w


def status_of(world: JointWorld, outbox_id: int) -> EntryStatus:
    gd = world.regions["GD"].ctx
    source = ConsortiumCheckpoints(
        Consortium.load(world.consortium_path), "GD", gd.config.ledger_url
    )
    return AdminService(gd).entry_status(GD_ADMIN, outbox_id, source)


def test_issuance_becomes_cosigned_by_both_witnesses(world: JointWorld) -> None:
    gd = world.regions["GD"]
    enrolled = enrol_directly(gd.ctx, "G10000001", new_device())
    box = enrolled.issued.outbox_id
    assert status_of(world, box).state is EntryState.PENDING
    gd.anchor_all()
    first = status_of(world, box)
    assert first.state in {EntryState.SEQUENCED, EntryState.ANCHORED, EntryState.COSIGNED}
    assert first.log_index is not None
    done = wait_for(
        lambda: (s := status_of(world, box)).state is EntryState.COSIGNED and s,
        "the anchor to be cosigned by GD and MO",
    )
    assert done.witnesses == ("GD", "MO")
    assert done.checkpoint_size is not None and done.checkpoint_size > done.log_index


def test_admin_api_reports_cosigned_with_witnesses_over_http(world: JointWorld) -> None:
    gd = world.regions["GD"]
    app = create_app(gd.ctx.config, context=gd.ctx, start_workers=False)
    roles = frozenset({Role.VIEWER})
    accounts_db.create_account(gd.ctx.sessions, "watcher", "GD", roles, "a long pass phrase", 0)
    token = accounts_db.issue_token(gd.ctx.sessions, "watcher", "test", gd.ctx.now())
    enrolled = enrol_directly(gd.ctx, "G10000002", new_device())
    gd.anchor_all()
    with serve(app) as issuer:

        def fetch() -> dict[str, object]:
            r = requests.get(
                f"{issuer.url}/v1/admin/log-entries/{enrolled.issued.outbox_id}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert r.status_code == 200, r.text
            body: dict[str, object] = r.json()
            return body

        body = wait_for(lambda: (b := fetch())["state"] == "cosigned" and b, "cosigned")
    assert body["witnesses"] == ["GD", "MO"]
    assert body["ledger_error"] is None


def test_with_mo_down_the_entry_is_never_reported_cosigned(world: JointWorld) -> None:
    gd, mo = world.regions["GD"], world.regions["MO"]
    mo.server.stop()
    enrolled = enrol_directly(gd.ctx, "G10000003", new_device())
    box = enrolled.issued.outbox_id
    gd.anchor_all()
    # GD's node signs and its own witness cosigns; MO's cosignature is missing.
    # Cosignatures are collected after the checkpoint is signed, off the sequencing
    # thread, so wait for GD's own cosignature rather than just for the checkpoint.
    covered = wait_for(
        lambda: (
            (s := status_of(world, box)).checkpoint_size is not None
            and s.checkpoint_size > (s.log_index or 0)
            and "GD" in s.witnesses
            and s
        ),
        "GD's checkpoint, cosigned by GD's witness, to cover the entry",
    )
    assert covered.state is EntryState.ANCHORED
    assert covered.witnesses == ("GD",)
    # MO back: the node's collector retries and the quorum is met.
    mo.server.start()
    done = wait_for(
        lambda: (s := status_of(world, box)).state is EntryState.COSIGNED and s,
        "MO's cosignature after MO came back",
    )
    assert done.witnesses == ("GD", "MO")


def test_own_node_unreachable_leaves_a_sequenced_entry_sequenced(world: JointWorld) -> None:
    gd = world.regions["GD"]
    enrolled = enrol_directly(gd.ctx, "G10000004", new_device())
    gd.anchor_all()
    gd.server.stop()
    try:
        st = status_of(world, enrolled.issued.outbox_id)
    finally:
        gd.server.start()
    assert st.state is EntryState.SEQUENCED
    # Refused connection or a 503 from a server going down: either way, no checkpoint.
    assert st.ledger_error is not None and "/checkpoint" in st.ledger_error


def test_checkpoint_signed_by_a_foreign_key_is_refused(world: JointWorld) -> None:
    consortium = Consortium.load(world.consortium_path)
    gd = consortium.member("GD")
    assert gd.log_origin is not None
    skey, _ = NoteSigner.generate(gd.log_origin)
    forged = signed_checkpoint(
        Checkpoint(gd.log_origin, 5, b"\x01" * 32), NoteSigner.from_skey(skey)
    )
    with pytest.raises(LedgerUnavailableError, match="checkpoint refused"):
        assess_checkpoint(forged, gd, consortium)


def test_mo_checkpoint_is_not_taken_for_gd(world: JointWorld) -> None:
    consortium = Consortium.load(world.consortium_path)
    mo = world.regions["MO"]
    data = requests.get(f"{mo.url}/checkpoint", timeout=5).content
    with pytest.raises(LedgerUnavailableError):
        assess_checkpoint(data, consortium.member("GD"), consortium)


def test_second_root_for_a_seen_size_and_a_shrinking_tree_raise_typed_alarms() -> None:
    """C2SP tlog-witness: a log never signs two trees of one size nor a smaller tree;
    the console words each alarm from its kind (see test_overview for the wording)."""
    import time

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from issuer.ledger_state import AlarmKind, LedgerAlarm, assess_region
    from ledger.log.checkpoint import cosign, cosignature_vkey
    from ledger.log.consortium import build_consortium
    from ledger.log.entries import root_public_key_bytes

    origin = "gd.log.example/test"
    log = NoteSigner.from_skey(NoteSigner.generate(origin)[0])
    witness = NoteSigner.from_skey(NoteSigner.generate("witness.gd.example")[0])
    consortium = build_consortium(
        [
            {
                "id": "GD",
                "name": "Guangdong",
                "witness_vkey": cosignature_vkey(witness),
                "node_url": "http://127.0.0.1:9",
                "log_origin": origin,
                "log_vkey": log.verifier().vkey(),
                "root_public_key": root_public_key_bytes(Ed25519PrivateKey.generate()),
            }
        ]
    )
    gd = consortium.member("GD")

    def served(size: int, root: bytes) -> bytes:
        cp = Checkpoint(origin, size, root)
        note = signed_checkpoint(cp, log)
        return note + cosign(cp, witness, int(time.time())).encode()

    seen: dict[str, tuple[int, str]] = {}
    assert assess_region(served(10, b"\x01" * 32), gd, consortium, seen).alarm is None
    fork = assess_region(served(10, b"\x02" * 32), gd, consortium, seen).alarm
    assert fork == LedgerAlarm(AlarmKind.FORK, 10)
    rollback = assess_region(served(7, b"\x03" * 32), gd, consortium, seen).alarm
    assert rollback == LedgerAlarm(AlarmKind.ROLLBACK, 7, 10)
    # The admin API's wording is unchanged.
    assert str(rollback) == "rollback: tree size went from 10 down to 7"
