"""A red resident across a sharded home log, end to end over real HTTP on 127.0.0.1.

GD runs its log in hourly temporal shards (MO unsharded); both issuers, nodes,
witnesses and mirrors are real. A green GD resident holds two GD credentials that
expire in two different shards (the second issued by an issuer whose clock is 200 s
ahead, across the shard boundary) and has converted the first into an MO credential.
Their status then turns red at home: GD revokes both, each revocation in the shard of
the credential it names, neither in the shard open now. A station that syncs once GD
has logged it denies both GD credentials and the MO conversion (source revoked).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from credential.presentation import make_presentation
from credential.verdict import Decision, Reason
from credential.verify import verify_presentation
from issuer.app import create_app
from issuer.conversion import SyncedTrustSource
from issuer.models import OutboxRow
from issuer.testing import enrol_directly, new_device, serve
from tests.issuer.test_conversion_lineage import (
    Both,
    cosigned,
    green_gd_converted_to_mo,
    positive_test,
)
from tests.support.issuer_joint import joint_world

pytestmark = pytest.mark.slow

PERIOD_S = 3_600  # ledger.log.shards.MIN_PERIOD_S
VALIDITY_S = 24 * 3_600  # issuer.config.DEFAULT_CREDENTIAL_VALIDITY_S
AHEAD_S = 200  # the GD issuer's clock for the second credential; > the world's set-up


@dataclass
class AheadClock:
    offset: float = 0.0

    def now(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def sharded(tmp_path: Path) -> Iterator[tuple[Both, AheadClock, int]]:
    # A shard boundary AHEAD_S after the expiry of a credential issued now.
    end = int(time.time()) + VALIDITY_S + AHEAD_S
    table = {"period_s": PERIOD_S, "epoch": end - 30 * PERIOD_S, "grace_s": 300,
             "max_validity_s": VALIDITY_S + PERIOD_S}  # fmt: skip
    clock = AheadClock()
    with joint_world(tmp_path, shards={"GD": table}, clocks={"GD": clock}) as world:
        servers, urls, sources, apps = [], {}, {}, {}
        for rid, region in world.regions.items():
            cfg = region.ctx.config
            assert cfg.sync_state_path is not None
            source = SyncedTrustSource(world.consortium_path, cfg.sync_state_path, 0.0)
            app = create_app(cfg, context=region.ctx, trust=source, start_workers=False)
            sources[rid], apps[rid] = source, app
            servers.append(serve(app))
        try:
            for rid, cm in zip(world.regions, servers, strict=True):
                urls[rid] = cm.__enter__().url
            yield Both(world, urls, sources, apps, tmp_path), clock, end  # type: ignore[arg-type]
        finally:
            for cm in servers:
                cm.__exit__(None, None, None)


def _shard_of(both: Both, kind: str, ref: str) -> int | None:
    with both.region("GD").ctx.sessions() as s:
        return s.scalars(
            select(OutboxRow.shard).where(OutboxRow.kind == kind, OutboxRow.ref == ref)
        ).one()


def test_red_resident_conversion_is_denied_when_the_home_log_is_sharded(
    sharded: tuple[Both, AheadClock, int],
) -> None:
    both, clock, _end = sharded
    gd = both.region("GD")
    device, first, _holder, mo_jws, _ = green_gd_converted_to_mo(both, "G10000001")
    clock.offset = AHEAD_S
    second_device = new_device()
    second = enrol_directly(gd.ctx, "G10000001", second_device).issued
    clock.offset = 0
    cosigned(gd, second.outbox_id)
    a, b = str(first.issued.credential.status_index), str(second.credential.status_index)
    shard_a = _shard_of(both, "credential_anchored", a)
    shard_b = _shard_of(both, "credential_anchored", b)
    assert shard_a is not None and shard_b == shard_a + 1  # across the boundary at `end`
    now = time.time()
    admitted = verify_presentation(make_presentation(mo_jws, device, now), both.station_view(), now)
    assert admitted.decision is Decision.ADMIT

    # Red at home: GD revokes both credentials, each in its own credential's shard.
    positive_test(gd, "G10000001")
    assert _shard_of(both, "credential_revoked", a) == shard_a
    assert _shard_of(both, "credential_revoked", b) == shard_b
    with gd.ctx.sessions() as s:
        boxes = s.scalars(select(OutboxRow.id).where(OutboxRow.kind == "credential_revoked")).all()
    for box in boxes:
        cosigned(gd, box)

    view = both.station_view()
    assert view.is_revoked("GD", int(a)) and view.is_revoked("GD", int(b))
    now = time.time()
    # The second credential is valid from the (ahead) clock that issued it.
    pairs = ((first.issued.credential.jws, device, now),
             (second.credential.jws, second_device, now + AHEAD_S))  # fmt: skip
    for jws, dev, at in pairs:
        v = verify_presentation(make_presentation(jws, dev, at), view, at)
        assert v.decision is Decision.DENY and v.reasons == (Reason.REVOKED,)
    v = verify_presentation(make_presentation(mo_jws, device, now), view, now)
    assert v.decision is Decision.DENY and v.reasons == (Reason.SOURCE_REVOKED,)
