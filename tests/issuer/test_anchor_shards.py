"""Anchoring into a sharded log: each outbox row records the shard of its credential's
expiry (revocations the shard of the credential they name; key entries none), and the
worker sends each run of rows to its own shard in outbox order, on SQLite and on
PostgreSQL. A shard that froze before its rows were anchored refuses them for good:
they are quarantined, the rest goes on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from issuer import anchor
from issuer.admin.accounts import Role
from issuer.admin.services import Actor, AdminService
from issuer.app import create_app
from issuer.context import IssuerContext, ManualClock
from issuer.errors import ShardUnavailableError
from issuer.models import CredentialRow, OutboxRow
from issuer.testing import device_key_text, enrol_directly, make_context, new_device, serve
from ledger.log.consortium import build_consortium, write_consortium
from ledger.log.entries import EntryType, decode_entry
from tests.support.ledger_joint import member_keys

HOUR = 3_600
EPOCH = 1_799_990_000
ADMIN = Actor("admin", "GD", frozenset({Role.OPERATOR, Role.KEY_ADMIN}))


@dataclass
class ShardRecorder:
    """A ShardLedgerPort that records where each entry went; `frozen` shards refuse."""

    sent: list[tuple[int | None, bytes]] = field(default_factory=list)
    frozen: set[int] = field(default_factory=set)

    def submit(self, entries: list[bytes]) -> list[int]:
        return self._take(None, entries)

    def submit_to_shard(self, shard: int, entries: list[bytes]) -> list[int]:
        if shard in self.frozen:
            raise anchor.EntryRefusedError(0, "shard_frozen", f"shard {shard} is frozen")
        return self._take(shard, entries)

    def _take(self, shard: int | None, entries: list[bytes]) -> list[int]:
        out = []
        for e in entries:
            self.sent.append((shard, e))
            out.append(len(self.sent) - 1)
        return out


def sharded_context(tmp_path: Path, database_url: str) -> tuple[IssuerContext, ManualClock]:
    clock = ManualClock(EPOCH + 100.0 - HOUR)  # credentials issued now expire in shard 0
    ctx = make_context(tmp_path, "GD", database_url=database_url, clock=clock,
                       credential_validity_s=HOUR)  # fmt: skip
    gd = member_keys("GD", 18001)
    table = gd.table()
    table["shards"] = {"period_s": HOUR, "epoch": EPOCH, "max_validity_s": HOUR}
    mo = member_keys("MO", 18002).table()
    from ledger.log.consortium import build_consortium

    path = tmp_path / "consortium.toml"
    write_consortium(path, build_consortium([table, mo]))
    ctx.config = ctx.config.replace(consortium_path=path)
    return ctx, clock


def _run(ctx: IssuerContext, clock: ManualClock) -> None:
    port = ShardRecorder()
    anchor.drain(ctx, port)  # the key entries of the set-up: routed by the node
    assert port.sent and all(shard is None for shard, _ in port.sent)
    d1, d2 = new_device(), new_device()
    first = enrol_directly(ctx, "G10000001", d1).issued.credential  # expires in shard 0
    clock.advance(HOUR)
    second = enrol_directly(ctx, "G10000002", d2).issued.credential  # expires in shard 1
    AdminService(ctx).revoke(ADMIN, first.status_index, "fraud", "test")
    with ctx.sessions() as s:
        shards = dict(s.execute(select(OutboxRow.ref, OutboxRow.shard)
                                .where(OutboxRow.kind != "key_added")).all())  # fmt: skip
    assert shards[str(first.status_index)] is not None
    port.sent.clear()
    assert anchor.drain(ctx, port) == 3
    got = [(shard, decode_entry(e)) for shard, e in port.sent]
    # Outbox order kept; each entry at the shard of its credential's expiry.
    assert [(sh, e.type) for sh, e in got] == [
        (0, EntryType.CREDENTIAL_ANCHORED),
        (1, EntryType.CREDENTIAL_ANCHORED),
        (0, EntryType.CREDENTIAL_REVOKED),
    ]
    assert got[1][1].status_index == second.status_index  # type: ignore[union-attr]


def test_rows_carry_their_shard_and_go_to_it_in_order_sqlite(tmp_path: Path) -> None:
    ctx, clock = sharded_context(tmp_path, "")
    try:
        _run(ctx, clock)
    finally:
        ctx.dispose()


@pytest.mark.postgres
def test_rows_carry_their_shard_and_go_to_it_in_order_postgres(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    ctx, clock = sharded_context(tmp_path, fresh_postgres_url)
    try:
        _run(ctx, clock)
    finally:
        ctx.dispose()


def test_rows_of_a_frozen_shard_are_quarantined_and_the_rest_goes_on(tmp_path: Path) -> None:
    ctx, clock = sharded_context(tmp_path, "")
    try:
        port = ShardRecorder()
        anchor.drain(ctx, port)
        enrol_directly(ctx, "G10000003", new_device())  # shard 0
        clock.advance(HOUR)
        enrol_directly(ctx, "G10000004", new_device())  # shard 1
        port.frozen.add(0)
        port.sent.clear()
        # First round: shard 0's run is refused and set aside; the next round sends on.
        assert anchor.drain(ctx, port) == 0
        assert anchor.drain(ctx, port) == 1
        assert [shard for shard, _ in port.sent] == [1]
        assert [q.error.split(":")[0] for q in anchor.quarantined(ctx)] == [
            "refused by the ledger (shard_frozen)"
        ]
    finally:
        ctx.dispose()


def test_unsharded_region_rows_carry_no_shard(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, "GD")
    try:
        enrol_directly(ctx, "G10000005", new_device())
        with ctx.sessions() as s:
            assert set(s.scalars(select(OutboxRow.shard))) == {None}
    finally:
        ctx.dispose()


def test_credential_outliving_the_plans_max_validity_is_refused_before_signing(
    tmp_path: Path,
) -> None:
    """The issuer's credential_validity_s exceeds the consortium's max_validity_s: the
    node runs no shard that far out, so the anchor could never be filed where it
    belongs. Refused, typed, before anything is signed or queued."""
    ctx, _clock = sharded_context(tmp_path, f"sqlite:///{tmp_path / 'issuer.db'}")
    ctx.config = ctx.config.replace(credential_validity_s=2 * HOUR)
    with ctx.sessions() as s:
        before = s.scalar(select(func.count()).select_from(OutboxRow))
    with pytest.raises(ShardUnavailableError, match="max_validity_s"):
        enrol_directly(ctx, "G10000001", new_device())
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(OutboxRow)) == before
        assert s.scalar(select(func.count()).select_from(CredentialRow)) == 0
    ctx.dispose()


def test_credential_expiring_before_the_shard_epoch_is_refused_before_signing(
    tmp_path: Path,
) -> None:
    ctx, _clock = sharded_context(tmp_path, f"sqlite:///{tmp_path / 'issuer.db'}")
    # The schedule starts two hours on: a credential issued now expires before shard 0.
    gd = member_keys("GD", 18001).table()
    gd["shards"] = {"period_s": HOUR, "epoch": EPOCH + 2 * HOUR, "max_validity_s": HOUR}
    path = tmp_path / "later.toml"
    write_consortium(path, build_consortium([gd, member_keys("MO", 18002).table()]))
    ctx.config = ctx.config.replace(consortium_path=path)
    with pytest.raises(ShardUnavailableError, match="epoch"):
        enrol_directly(ctx, "G10000001", new_device())
    with ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(CredentialRow)) == 0
    ctx.dispose()


def test_enrolment_over_http_answers_shard_unavailable_not_a_500(tmp_path: Path) -> None:
    ctx, _clock = sharded_context(tmp_path, f"sqlite:///{tmp_path / 'issuer.db'}")
    ctx.config = ctx.config.replace(credential_validity_s=2 * HOUR)
    app = create_app(ctx.config, context=ctx, start_workers=False)
    with serve(app) as issuer:
        r = requests.post(f"{issuer.url}/v1/enrolment/code",
                          json={"document_number": "G10000001"}, timeout=10)  # fmt: skip
        assert r.status_code == 202, r.text
        r = requests.post(
            f"{issuer.url}/v1/enrolment",
            json={"document_number": "G10000001",
                  "code": ctx.delivery.sent["G10000001"],  # type: ignore[union-attr]
                  "device_key": device_key_text(new_device())},
            timeout=10,
        )  # fmt: skip
    assert r.status_code == 503 and r.json()["error"] == "shard_unavailable", r.text
    ctx.dispose()
