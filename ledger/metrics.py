"""The ledger node's Prometheus metrics and readiness checks.

What it does: `LedgerMetrics.for_node(node, joint)` builds one `CollectorRegistry` per
node with
- a scrape-time collector reading the node's own state: tree and checkpoint size,
  checkpoint age, each consortium witness's cosignature on the latest checkpoint
  (present or not, and its age: C2SP tlog-cosignature timestamps), whether the quorum
  policy is met; and in joint operation (`WitnessSideCollector`) the witness side: the
  latest size cosigned per other origin and how long ago it moved, the mirrored size,
  and the stored fork / misbehaviour evidence by origin and kind;
- counters the HTTP layer bumps: writer refusals, witness refusals by code;
- the request latency histogram (common.observability.instrument).
A sharded node (`LedgerMetrics.for_sharded`) serves one registry that merges its own
counters, histogram and witness side with every tracked shard's registry, each shard's
samples labelled `shard="<k>"` (`ShardedCollector`), under the same metric names.
`readiness_checks` says whether the database answers, the signing key is loaded and the
sequencer thread runs. Every label is an origin, a witness key name, a member id, a
code or a tracked shard's number: nothing from a request, nothing about a person.

To add a gauge, add one `yield` to `NodeStateCollector.collect` (or another collector
registered on `registry`); the alert rules (deploy/prometheus/) and the dashboard
(deploy/grafana/) name the metrics by these names. What it does not: serve HTTP
(common.observability.OpsServer does) or change any state.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from common.observability import NotReadyError, ReadinessCheck
from ledger.log.errors import LedgerError
from ledger.log.note import NoteSignature

if TYPE_CHECKING:
    from ledger.joint.api import JointServices
    from ledger.node.app import LedgerNode

log = logging.getLogger(__name__)

METRICS_KEY = "healthbridge_ledger_metrics"  # app.extensions key
SHARD_LABEL = "shard"  # a sharded node's per-shard series: shard="<k>"
COSIGNATURE_TIMESTAMP_BYTES = 8  # tlog-cosignature: big-endian uint64 seconds first


def cosignature_times(lines: tuple[str, ...]) -> dict[str, int]:
    """{witness key name: cosignature timestamp} of a checkpoint's cosignature lines.

    C2SP tlog-cosignature v1: the signature blob is an 8-byte big-endian timestamp and
    an Ed25519 signature. The node verified these lines when it collected them; here
    they are only read. Lines that do not parse are skipped."""
    out: dict[str, int] = {}
    for line in lines:
        try:
            sig = NoteSignature.parse(line)
        except LedgerError:
            continue
        if len(sig.signature) <= COSIGNATURE_TIMESTAMP_BYTES:
            continue
        (ts,) = struct.unpack(">Q", sig.signature[:COSIGNATURE_TIMESTAMP_BYTES])
        out[sig.name] = max(out.get(sig.name, 0), int(ts))
    return out


@dataclass(eq=False)  # registries key collectors by identity
class NodeStateCollector(Collector):
    """Gauges read from the node's store (and witness store) at scrape time."""

    node: LedgerNode
    joint: JointServices | None = None
    clock: Callable[[], float] = time.time

    def collect(self) -> Iterator[Metric]:
        n = self.node
        origin = n.config.origin
        now = self.clock()
        up = GaugeMetricFamily(
            "healthbridge_ledger_database_up",
            "1 when the node's database answered this scrape.",
            labels=["origin"],
        )
        try:
            tree = n.store.tree_state()
            cp = n.store.latest_checkpoint()
        except LedgerError as e:
            log.warning("metrics: the log database did not answer: %s", type(e).__name__)
            up.add_metric([origin], 0)
            yield up
            return
        up.add_metric([origin], 1)
        yield up
        yield _gauge(
            "healthbridge_ledger_tree_size", "Entries in this node's log.", origin, tree.size
        )
        if cp is None:
            return
        yield _gauge(
            "healthbridge_ledger_checkpoint_size",
            "Tree size of the latest checkpoint.",
            origin,
            cp.size,
        )
        yield _gauge(
            "healthbridge_ledger_checkpoint_age_seconds",
            "Seconds since the latest checkpoint was signed.",
            origin,
            max(0.0, now - cp.signed_at_ms / 1000.0),
        )
        yield _gauge(
            "healthbridge_ledger_checkpoint_cosignatures",
            "Cosignature lines on the latest checkpoint.",
            origin,
            len(cp.cosignatures),
        )
        if self.joint is not None:
            yield from self._cosigners(cp.cosignatures, cp.signed_at_ms / 1000.0, now)

    def _cosigners(self, lines: tuple[str, ...], signed_at: float, now: float) -> Iterator[Metric]:
        assert self.joint is not None
        consortium = self.joint.consortium
        times = cosignature_times(lines)
        origin = self.node.config.origin
        present = GaugeMetricFamily(
            "healthbridge_ledger_witness_cosigned",
            "1 when the member's witness cosigned this node's latest checkpoint.",
            labels=["origin", "member", "witness"],
        )
        age = GaugeMetricFamily(
            "healthbridge_ledger_cosignature_age_seconds",
            "Seconds since the member's witness last cosigned this log (its cosignature "
            "timestamp on the latest checkpoint; the checkpoint's age when missing).",
            labels=["origin", "member", "witness"],
        )
        cosigners: list[str] = []
        for m in consortium.members:
            ts = times.get(m.witness.name)
            present.add_metric([origin, m.id, m.witness.name], 0 if ts is None else 1)
            since = signed_at if ts is None else float(ts)
            age.add_metric([origin, m.id, m.witness.name], max(0.0, now - since))
            if ts is not None:
                cosigners.append(m.id)
        yield present
        yield age
        yield _gauge(
            "healthbridge_ledger_quorum_met",
            "1 when the latest checkpoint's cosignatures satisfy the consortium policy.",
            origin,
            1 if consortium.policy.satisfied_by(cosigners) else 0,
        )


@dataclass(eq=False)
class WitnessSideCollector(Collector):
    """Joint operation: this node's witness and mirror, read at scrape time (once per
    node, however many logs or shards the node itself runs)."""

    joint: JointServices
    clock: Callable[[], float] = time.time

    def collect(self) -> Iterator[Metric]:
        from ledger.joint.mirror import MirrorStore
        from ledger.joint.witness import evidence_table, latest_table

        now = self.clock()
        witness = self.joint.witness
        engine: sa.Engine = witness.store.engine
        size = GaugeMetricFamily(
            "healthbridge_witness_cosigned_size",
            "Tree size of the latest checkpoint this node's witness cosigned, per log.",
            labels=["log_origin"],
        )
        moved = GaugeMetricFamily(
            "healthbridge_witness_advanced_age_seconds",
            "Seconds since this node's witness last saw the log grow.",
            labels=["log_origin"],
        )
        mirrored = GaugeMetricFamily(
            "healthbridge_mirror_size",
            "Entries mirrored and validated, per log.",
            labels=["log_origin"],
        )
        evidence = CounterMetricFamily(
            "healthbridge_witness_evidence",
            "Fork and misbehaviour evidence recorded by this node's witness.",
            labels=["log_origin", "kind"],
        )
        try:
            with engine.connect() as c:
                latest = {
                    r.origin: (r.size, r.updated_at)
                    for r in c.execute(
                        sa.select(
                            latest_table.c.origin, latest_table.c.size, latest_table.c.updated_at
                        )
                    )
                }
                counts = c.execute(
                    sa.select(
                        evidence_table.c.origin, evidence_table.c.kind, sa.func.count()
                    ).group_by(evidence_table.c.origin, evidence_table.c.kind)
                ).all()
            store = self.joint.mirror.store
            sizes = (
                {o: store.size(o) for o in witness.logs} if isinstance(store, MirrorStore) else {}
            )
        except sa.exc.SQLAlchemyError as e:
            log.warning("metrics: the witness tables did not answer: %s", type(e).__name__)
            return
        for o in witness.logs:
            s, at = latest.get(o, (0, None))
            size.add_metric([o], s)
            if at is not None:
                moved.add_metric([o], max(0.0, now - at))
            if o in sizes:
                mirrored.add_metric([o], sizes[o])
        for o, kind, count in counts:
            evidence.add_metric([o, kind], count)
        yield size
        yield moved
        yield mirrored
        yield evidence


def _gauge(name: str, doc: str, origin: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=["origin"])
    g.add_metric([origin], value)
    return g


def _counters(registry: CollectorRegistry) -> tuple[Counter, Counter]:
    writer = Counter(
        "healthbridge_ledger_writer_refusals",
        "Submissions refused because the writer credentials did not verify.",
        registry=registry,
    )
    witness = Counter(
        "healthbridge_witness_refusals",
        "add-checkpoint requests this node's witness refused, by error code.",
        ["code"],
        registry=registry,
    )
    return writer, witness


ShardMetricsSource = Callable[[], Sequence[tuple[int, "LedgerMetrics"]]]


@dataclass(eq=False)
class ShardedCollector(Collector):
    """A sharded node's scrape: the node's own metrics (`base`: the top level's request
    histogram and refusal counters, the witness side) and every tracked shard's, each
    sample of a shard labelled `shard="<k>"`, merged into one family per metric name
    (the exposition format allows one HELP/TYPE per name). The metric names are those
    of an unsharded node, so the shipped alert rules and dashboard read both. Only
    tracked shards appear (a closed shard's series end with it): the label's values
    are bounded by the shard plan, and carry nothing from a request."""

    base: CollectorRegistry
    shards: ShardMetricsSource
    joint: JointServices | None = None

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}

        def add(fam: Metric, extra: dict[str, str]) -> None:
            out = merged.get(fam.name)
            if out is None:
                out = merged[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
            out.samples.extend(s._replace(labels={**s.labels, **extra}) for s in fam.samples)

        for fam in self.base.collect():
            add(fam, {})
        for number, m in self.shards():
            if self.joint is not None:
                m.attach_joint(self.joint, witness_side=False)
            for fam in m.registry.collect():
                add(fam, {SHARD_LABEL: str(number)})
        yield from merged.values()


@dataclass
class LedgerMetrics:
    """One node's registry (what its metrics listener serves) and the counters its HTTP
    layer bumps. A sharded node's (`for_sharded`) has no state of its own: `registry`
    merges `base` with every tracked shard's metrics."""

    registry: CollectorRegistry
    state: NodeStateCollector | None
    writer_refusals: Counter
    witness_refusals: Counter
    checks: list[ReadinessCheck] = field(default_factory=list)
    base: CollectorRegistry | None = None  # where the request histogram goes (`instrument`)
    sharded: ShardedCollector | None = None
    _witness_side: WitnessSideCollector | None = None

    @classmethod
    def for_node(cls, node: LedgerNode, joint: JointServices | None = None) -> LedgerMetrics:
        registry = CollectorRegistry()
        state = NodeStateCollector(node)
        registry.register(state)
        writer, witness = _counters(registry)
        m = cls(registry, state, writer, witness, readiness_checks(node), base=registry)
        if joint is not None:
            m.attach_joint(joint)
        return m

    @classmethod
    def for_sharded(cls, shards: ShardMetricsSource) -> LedgerMetrics:
        base = CollectorRegistry()
        writer, witness = _counters(base)
        sharded = ShardedCollector(base, shards)
        registry = CollectorRegistry()
        registry.register(sharded)
        return cls(registry, None, writer, witness, [], base=base, sharded=sharded)

    def attach_joint(self, joint: JointServices, *, witness_side: bool = True) -> None:
        """Joint operation: also report cosigners and, unless `witness_side` is False
        (a shard of a sharded node: its node reports them once), the witness side and
        the mirror."""
        if self.state is not None:
            self.state.joint = joint
        if self.sharded is not None:
            self.sharded.joint = joint
        if witness_side and self._witness_side is None:
            self._witness_side = WitnessSideCollector(joint)
            (self.base or self.registry).register(self._witness_side)

    def readiness(self) -> list[ReadinessCheck]:
        """The checks of the metrics listener's `/readyz`: a sharded node's are every
        tracked shard's, named `shard_<k>_<check>`."""
        if self.sharded is None:
            return self.checks
        return [
            ReadinessCheck(f"shard_{number}_{c.name}", c.probe)
            for number, m in self.sharded.shards()
            for c in m.checks
        ]


def readiness_checks(node: LedgerNode) -> list[ReadinessCheck]:
    def database() -> None:
        try:
            node.store.tree_state()
        except LedgerError as e:
            raise NotReadyError("the log database does not answer") from e

    def signing_key() -> None:
        if node.signer is None:
            raise NotReadyError("the log signing key is not loaded")

    def sequencer() -> None:
        t = getattr(node.sequencer, "_thread", None)
        if t is None or not t.is_alive():
            raise NotReadyError("the sequencer is not running")

    return [
        ReadinessCheck("database", database),
        ReadinessCheck("log_key", signing_key),
        ReadinessCheck("sequencer", sequencer),
    ]
