"""Fixtures of the deployment tests: two ledger nodes in joint operation over HTTP."""

from tests.ledger.node.test_node_openapi import joint_pair  # noqa: F401 (a fixture, used by name)
