"""Several issuer hosts on one PostgreSQL database: anchoring workers claim outbox rows
with `FOR UPDATE SKIP LOCKED`, so two workers never hold the same row, an entry never
overtakes one it depends on, and with two issuing instances and two anchoring workers
as separate processes (one of each killed with SIGKILL under load) every committed
credential is on the log exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from issuer import anchor
from issuer.context import IssuerContext
from issuer.issuance import issue_credential, revoke_credential_row
from issuer.models import CredentialRow, Holder, OutboxRow
from issuer.testing import enrol_directly, ledger_node, make_context, new_device
from tests.issuer.test_crash_anchoring import check_exactly_once

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]
LOAD_S = 1.5  # seconds all four processes run before the kills
AFTER_KILL_S = 1.0  # seconds the survivors run on


class BlockingLedger(anchor.InMemoryLedger):
    """A ledger whose submit waits until released: a worker stuck mid-batch."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[list[bytes]] = []

    def submit(self, entries: list[bytes]) -> list[int]:
        self.batches.append(list(entries))
        self.entered.set()
        assert self.release.wait(20)
        return super().submit(entries)


def _issue(ctx: IssuerContext, n: int) -> list[int]:
    with ctx.sessions.begin() as s:
        holder = s.query(Holder).first()
        assert holder is not None
        return [
            issue_credential(ctx, s, holder, ctx.now()).credential.status_index for _ in range(n)
        ]


def test_two_workers_never_claim_the_same_outbox_row(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    ctx = make_context(tmp_path, "GD", database_url=fresh_postgres_url, anchor_batch=4)
    try:
        anchor.drain(ctx, anchor.InMemoryLedger())  # the key registration
        enrol_directly(ctx, "G10000001", new_device())
        _issue(ctx, 7)
        slow = BlockingLedger()
        first = threading.Thread(target=anchor.anchor_once, args=(ctx, slow))
        first.start()
        assert slow.entered.wait(20)
        # The first worker holds its batch (locked rows) inside submit; the second
        # must skip those rows and take the next ones instead of sending them again.
        fast = anchor.InMemoryLedger()
        assert anchor.anchor_once(ctx, fast) == 4
        slow.release.set()
        first.join(20)
        assert not set(slow.batches[0]) & set(fast.entries)
        assert len(slow.batches[0]) + len(fast.entries) == 8  # the enrolment's one too
        assert anchor.pending_count(ctx) == 0
    finally:
        ctx.dispose()


def test_revocation_never_overtakes_its_anchor_held_by_another_worker(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    ctx = make_context(tmp_path, "GD", database_url=fresh_postgres_url, anchor_batch=1)
    try:
        anchor.drain(ctx, anchor.InMemoryLedger())
        enrol_directly(ctx, "G10000001", new_device())
        anchor.drain(ctx, anchor.InMemoryLedger())
        [index] = _issue(ctx, 1)
        with ctx.sessions.begin() as s:
            row = s.scalars(select(CredentialRow).where(CredentialRow.status_index == index)).one()
            revoke_credential_row(ctx, s, row, "holder_request", ctx.now())
        slow = BlockingLedger()
        first = threading.Thread(target=anchor.anchor_once, args=(ctx, slow))
        first.start()
        assert slow.entered.wait(20)
        # The anchor row is locked by the first worker; its revocation waits for it
        # (ledger rule NOT_ANCHORED) rather than being sent first by the second.
        assert anchor.anchor_once(ctx, anchor.InMemoryLedger()) == 0
        slow.release.set()
        first.join(20)
        second = anchor.InMemoryLedger()
        assert anchor.anchor_once(ctx, second) == 1
        with ctx.sessions() as s:
            kinds = s.scalars(select(OutboxRow.kind).order_by(OutboxRow.id.desc()).limit(2)).all()
        assert kinds == ["credential_revoked", "credential_anchored"]
    finally:
        ctx.dispose()


def _spawn(role: str, env: dict[str, str]) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.issuer.scale_child", role],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


@pytest.mark.slow
def test_two_issuers_and_two_anchoring_workers_anchor_each_credential_once_despite_sigkill(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    ctx = make_context(tmp_path, "GD", database_url=fresh_postgres_url)
    try:
        enrol_directly(ctx, "G10000001", new_device())
        with ledger_node(ctx, tmp_path) as node:
            env = {
                **os.environ,
                "SCALE_DATA_DIR": str(ctx.config.data_dir),
                "SCALE_DB_URL": fresh_postgres_url,
                "SCALE_LEDGER_URL": node.url,
            }
            children = {
                name: _spawn(role, env)
                for name, role in (
                    ("issuer-a", "issue"),
                    ("issuer-b", "issue"),
                    ("anchor-a", "anchor"),
                    ("anchor-b", "anchor"),
                )
            }
            time.sleep(LOAD_S)
            for name in ("issuer-a", "anchor-a"):  # one host of each kind dies
                children[name].send_signal(signal.SIGKILL)
            time.sleep(AFTER_KILL_S)
            for child in children.values():
                child.send_signal(signal.SIGKILL)
            outputs = {name: child.communicate(timeout=30)[0] for name, child in children.items()}
            reported = {
                int(x)
                for name in ("issuer-a", "issuer-b")
                for x in outputs[name].split()
                if x.isdigit()
            }
            anchored_by = {
                name: sum(
                    int(line.split()[1])
                    for line in outputs[name].splitlines()
                    if line.startswith("anchored")
                )
                for name in ("anchor-a", "anchor-b")
            }
            assert len(reported) > 20, "the issuing instances hardly issued anything"
            assert all(n > 0 for n in anchored_by.values()), (
                f"a worker never anchored: {anchored_by}"
            )
            check_exactly_once(ctx, node.url, reported)
    finally:
        ctx.dispose()


def test_credentials_never_overtake_their_key_registration_held_by_another_worker(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    ctx = make_context(tmp_path, "GD", database_url=fresh_postgres_url, anchor_batch=16)
    try:
        # The key registration (a barrier) is the first pending row; credentials follow.
        enrol_directly(ctx, "G10000001", new_device())
        _issue(ctx, 3)
        slow = BlockingLedger()
        first = threading.Thread(target=anchor.anchor_once, args=(ctx, slow))
        first.start()
        assert slow.entered.wait(20)
        assert len(slow.batches[0]) == 1  # the key entry goes alone
        # Its credentials (ledger rule: a key must be registered first) wait for it.
        assert anchor.anchor_once(ctx, anchor.InMemoryLedger()) == 0
        slow.release.set()
        first.join(20)
        assert anchor.anchor_once(ctx, anchor.InMemoryLedger()) == 4
        assert anchor.pending_count(ctx) == 0
    finally:
        ctx.dispose()
