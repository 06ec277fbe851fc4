"""A source's pace over one sync pass (ledger.clients.sync.SourcePace), against
in-memory sources and a fake monotonic clock: when a slow source is abandoned, what
it staged is handed to the next source (even one that lags a little), and a wrong
bundle from a slow source is refused as it arrives, so it is never staged for the next
source to refetch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from credential.keys import generate_private_key, key_id, public_key_der
from ledger.clients.sync import (
    PacedSource,
    RegionStatus,
    SlowSourceError,
    SourceError,
    SourcePace,
    SyncClient,
    SyncedTrustState,
)
from ledger.log.entries import CredentialAnchored
from ledger.log.tiles import encode_entry_bundle
from tests.support.ledger_joint import (
    MemberKeys,
    MemoryLog,
    MemorySource,
    consortium_of,
    key_added,
    leaf_of,
    member_keys,
)

NOW = 1_700_000_100
BUNDLES = 10


@dataclass
class Ticker:
    """A monotonic clock that only the slow sources move."""

    t: float = 0.0

    def __call__(self) -> float:
        return self.t


@dataclass
class SlowSource(MemorySource):
    """Answers like MemorySource, each answer taking `delay_s` on the ticker."""

    ticker: Ticker = field(default_factory=Ticker)
    delay_s: float = 1.0
    wrong: list[bytes] | None = None  # leaves served instead of the logged ones

    def checkpoint(self) -> bytes:
        self.ticker.t += self.delay_s
        return super().checkpoint()

    def entry_bundle(self, index: int, width: int) -> bytes:
        self.ticker.t += self.delay_s
        if self.wrong is not None:
            self.bundle_calls += 1
            return encode_entry_bundle(self.wrong[index * 256 : index * 256 + width])
        return super().entry_bundle(index, width)


def _anchors(gd: MemberKeys, n: int, salt: int = 0) -> list[bytes]:
    issuer = generate_private_key()
    kid = key_id(public_key_der(issuer))
    return [leaf_of(key_added(gd, issuer))] + [
        leaf_of(CredentialAnchored("GD", (i + salt).to_bytes(32, "big"), i, kid, 1_800_000_000))
        for i in range(1, n)
    ]


def _client(tmp_path: Path, gd: MemberKeys, mo: MemberKeys, sources, ticker: Ticker) -> SyncClient:
    return SyncClient(
        consortium_of(gd, mo), tmp_path / "state.db", sources=lambda r: sources[r],
        clock=lambda: NOW, monotonic=ticker,
        pace=SourcePace(min_s=3.0, max_avg_s=0.5, cap_s=100.0),
    )  # fmt: skip


def test_source_pace_judges_the_average_after_min_s_and_anything_past_the_cap() -> None:
    pace = SourcePace(min_s=10.0, max_avg_s=1.0, cap_s=60.0)
    pace.check(0, 0.0)
    pace.check(3, 9.9)  # slow, but not judged before min_s
    pace.check(20, 19.0)  # judged, fast enough
    with pytest.raises(SlowSourceError, match="slow source abandoned: 5 requests"):
        pace.check(5, 10.0)
    with pytest.raises(SlowSourceError, match="cap 60 s"):
        pace.check(10_000, 60.5)  # fast on average, but past the cap
    assert issubclass(SlowSourceError, SourceError)  # the next source is tried
    with pytest.raises(ValueError, match="min_s <= cap_s"):
        SourcePace(min_s=10.0, cap_s=5.0)


def test_paced_source_refuses_requests_once_over_its_pace() -> None:
    gd, mo = member_keys("GD"), member_keys("MO")
    ticker = Ticker()
    log = MemoryLog(gd, _anchors(gd, 300))
    paced = PacedSource(
        SlowSource(log, [gd, mo], ticker=ticker, delay_s=2.0),
        SourcePace(min_s=3.0, max_avg_s=1.0, cap_s=100.0), ticker,
    )  # fmt: skip
    paced.checkpoint()
    paced.entry_bundle(0, 256)  # arrives: 4 s in, judged before the next request
    with pytest.raises(SlowSourceError):
        paced.entry_bundle(1, 44)
    assert paced.requests == 2 and paced.spent_s == 4.0
    with pytest.raises(SourceError, match="serves no revocation snapshots"):
        paced.revocation_snapshot(b"\x00" * 32)  # MemorySource serves none


def test_slow_nodes_staged_entries_are_handed_to_a_lagging_mirror(tmp_path: Path) -> None:
    gd, mo = member_keys("GD"), member_keys("MO")
    ticker = Ticker()
    leaves = _anchors(gd, BUNDLES * 256)
    node = SlowSource(MemoryLog(gd, leaves), [gd, mo], name="GD-node", ticker=ticker)
    lagging = MemoryLog(gd, leaves[: BUNDLES * 256 - 5])  # five entries behind
    mirror = MemorySource(lagging, [gd, mo], name="MO-mirror")
    sources = {"GD": [node, mirror], "MO": [MemorySource(MemoryLog(mo), [gd, mo])]}
    client = _client(tmp_path, gd, mo, sources, ticker)
    report = client.sync("GD").region("GD")
    # The node (largest tree, tried first) gave its checkpoint and two bundles in 3 s,
    # 1 s each: abandoned. The mirror resumed after those two bundles.
    assert report.status is RegionStatus.UPDATED and report.source == "MO-mirror"
    assert report.new_size == BUNDLES * 256 - 5
    assert node.bundle_calls == 2 and mirror.bundle_calls == BUNDLES - 2
    assert any("GD-node: slow source abandoned" in e for e in report.errors)
    assert SyncedTrustState(tmp_path / "state.db").tree_size("GD") == BUNDLES * 256 - 5


def test_wrong_bundle_from_a_slow_source_is_refused_and_never_costs_a_refetch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gd, mo = member_keys("GD"), member_keys("MO")
    ticker = Ticker()
    leaves = _anchors(gd, BUNDLES * 256)
    wrong = list(leaves)
    wrong[256:512] = _anchors(gd, BUNDLES * 256, salt=1)[256:512]  # bundle 1 rewritten
    node = SlowSource(MemoryLog(gd, leaves), [gd, mo], name="GD-node", ticker=ticker, wrong=wrong)
    mirror = MemorySource(MemoryLog(gd, leaves), [gd, mo], name="MO-mirror")
    sources = {"GD": [node, mirror], "MO": [MemorySource(MemoryLog(mo), [gd, mo])]}
    client = _client(tmp_path, gd, mo, sources, ticker)
    report = client.sync("GD").region("GD")
    assert report.status is RegionStatus.UPDATED and report.source == "MO-mirror"
    assert report.new_size == BUNDLES * 256
    # The node's bundle 0 was checked and staged; its bundle 1 was refused as it
    # arrived (before its pace ran out), and the mirror resumed at bundle 1, once.
    assert node.bundle_calls == 2 and mirror.bundle_calls == BUNDLES - 1
    assert any(
        e.startswith("GD-node: source served entries that do not match checkpoint 2560")
        for e in report.errors
    ), report.errors
    assert "refetching" not in caplog.text
    # The tiles the node served and were accepted are facts about the tree: the
    # mirror is not asked for them again.
    assert mirror.tile_calls == 0 and node.tile_calls > 0
