"""Assemble a runnable ledger node from its node.toml: the node alone, or the node taking
part in joint operation (witness, validating mirror, cosignature collection).

What it does: `open_node(config_path, consortium_file=None)` loads the config, and when
a consortium file is named (in node.toml or by the caller) opens `JointServices` for
this member, passes its collector as the sequencer's `cosign_hook`, registers the
witness/mirror blueprints and starts the retry loop. `RunningNode.close()` stops the
writer, the retry loop and the database pool. Used by `healthbridge ledger serve` and by
the gunicorn entry `ledger.wsgi:app`; `start_ops` opens the node's separate metrics and
probe listener. When the consortium gives this member a shard table
(`[members.shards]`, ledger.log.shards) the node is built sharded
(ledger.node.sharding): one log per tracked shard under `/<k>`, cosignatures collected
per shard. What it does not: serve the public HTTP API itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from common.observability import OpsServer, start_ops_server
from ledger.joint.api import JointServices
from ledger.log.consortium import load_consortium
from ledger.metrics import METRICS_KEY, LedgerMetrics
from ledger.node.app import EXTENSION_KEY, create_app
from ledger.node.config import ConfigError, NodeConfig, load_config
from ledger.node.sharding import SHARDED_KEY, ShardedNode, create_sharded_app


@dataclass
class RunningNode:
    """A built node app and, in joint operation, its witness/mirror services."""

    app: Flask
    config: NodeConfig
    joint: JointServices | None

    @property
    def sharded(self) -> ShardedNode | None:
        s: ShardedNode | None = self.app.extensions.get(SHARDED_KEY)
        return s

    @property
    def metrics(self) -> LedgerMetrics:
        """The node's metrics; a sharded node's report every tracked shard, each
        labelled shard="<k>" (ledger.metrics.ShardedCollector)."""
        m: LedgerMetrics = self.app.extensions[METRICS_KEY]
        return m

    def close(self) -> None:
        if self.joint is not None:
            self.joint.stop()
        sharded = self.sharded
        if sharded is not None:
            sharded.stop()
            return
        n = self.app.extensions[EXTENSION_KEY]
        n.sequencer.stop()
        n.store.dispose()


def open_joint(config: NodeConfig) -> JointServices:
    """Open this member's witness + mirror + collector from the config's consortium."""
    if config.consortium_file is None:
        raise ConfigError("expected consortium_file for joint operation, found none")
    if config.witness_key_file is None:
        raise ConfigError(
            "a node in a consortium needs witness_key_file (see `healthbridge ledger init`)"
        )
    consortium = load_consortium(config.consortium_file)
    member_id = config.member_id or config.region
    member = consortium.member(member_id)
    if member.log_origin != config.origin:
        raise ConfigError(
            f"consortium member {member_id} logs origin {member.log_origin!r}, "
            f"but this node's origin is {config.origin!r}"
        )
    return JointServices.open(consortium, member_id, config.witness_key_file, config.database_url)


def open_node(
    config_path: str | Path,
    consortium_file: str | Path | None = None,
    *,
    start: bool = True,
) -> RunningNode:
    """Build the node described by `config_path`; joint when a consortium is named."""
    config = load_config(config_path)
    if consortium_file is not None:
        config = dataclasses.replace(config, consortium_file=Path(consortium_file).resolve())
    if config.consortium_file is None:
        return RunningNode(create_app(config, start=start), config, None)
    joint = open_joint(config)
    plan = joint.member.shards
    if plan is not None:
        app = create_sharded_app(
            config, plan, extra_blueprints=joint.blueprints(), hooks=joint.shard_hooks(),
            start=start,
        )  # fmt: skip
        joint.attach(app)
        app.extensions[METRICS_KEY].attach_joint(joint)
        return RunningNode(app, config, joint)
    config = dataclasses.replace(config, cosign_hook=joint.collector)
    app = create_app(config, extra_blueprints=joint.blueprints(), start=start)
    joint.attach(app)
    app.extensions[METRICS_KEY].attach_joint(joint)
    return RunningNode(app, config, joint)


def start_ops(running: RunningNode, host: str, port: int) -> OpsServer:
    """The node's separate metrics/probe listener (`/metrics`, `/healthz`, `/readyz`)."""
    metrics = running.metrics
    return start_ops_server(metrics.registry, metrics.readiness, host, port)
