"""RFC 6962/9162 conformance: the transparency-dev/merkle proof probes and hash vectors.

Data: the shared vectors, vectors/ledger/merkle/ (transparency-dev/merkle @ 417fb0c3,
testdata/, Apache-2.0) and notes-and-trees.json (rfc6962_hashes). Every honest proof
must verify; every mutation must raise the typed proof error, never anything else.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ledger.log.errors import ConsistencyProofError, InclusionProofError
from ledger.log.merkle import (
    consistency_path,
    empty_root,
    inclusion_path,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from tests.support.environment import VECTORS, vector_path

MERKLE = VECTORS / "ledger" / "merkle"


def _probes(kind: str) -> list[Path]:
    return sorted((MERKLE / kind).rglob("*.json")) if MERKLE.is_dir() else []


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _id(p: Path) -> str:
    return str(p.relative_to(MERKLE))


@pytest.fixture(scope="module")
def hashes() -> dict[str, object]:
    data = json.loads(vector_path("ledger", "notes-and-trees.json").read_text())
    return data["rfc6962_hashes"]  # type: ignore[no-any-return]


def test_probe_sets_are_present() -> None:
    vector_path("ledger", "merkle")
    assert len(_probes("inclusion")) > 50
    assert len(_probes("consistency")) > 50


@pytest.mark.parametrize("probe", _probes("inclusion"), ids=_id)
def test_inclusion_probe(probe: Path) -> None:
    d = json.loads(probe.read_text())
    proof = [_b64(h) for h in d["proof"]] if d["proof"] is not None else None
    args = (_b64(d["leafHash"]), d["leafIdx"], d["treeSize"], proof, _b64(d["root"]))
    if d["wantErr"]:
        with pytest.raises(InclusionProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("probe", _probes("consistency"), ids=_id)
def test_consistency_probe(probe: Path) -> None:
    d = json.loads(probe.read_text())
    proof = [_b64(h) for h in d["proof"]] if d["proof"] is not None else None
    args = (d["size1"], d["size2"], _b64(d["root1"]), _b64(d["root2"]), proof)
    if d["wantErr"]:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_rfc6962_hash_vectors(hashes: dict[str, str]) -> None:
    assert empty_root().hex() == hashes["empty_tree_root_hex"]
    assert leaf_hash(b"").hex() == hashes["leaf_hash_of_empty_hex"]
    assert leaf_hash(b"L123456").hex() == hashes["leaf_hash_of_L123456_hex"]
    assert node_hash(b"N123", b"N456").hex() == hashes["node_hash_of_N123_N456_hex"]


def test_roots_of_the_eight_leaf_tree_at_every_size(hashes: dict[str, object]) -> None:
    leaves = [leaf_hash(bytes.fromhex(x)) for x in hashes["leaf_inputs_hex"]]  # type: ignore[attr-defined]
    for size, want in enumerate(hashes["roots_by_size_hex"]):  # type: ignore[arg-type]
        assert root_hash(leaves[:size]).hex() == want


def test_generated_proofs_of_the_eight_leaf_tree_verify(hashes: dict[str, object]) -> None:
    leaves = [leaf_hash(bytes.fromhex(x)) for x in hashes["leaf_inputs_hex"]]  # type: ignore[attr-defined]
    for size in range(1, len(leaves) + 1):
        root = root_hash(leaves[:size])
        for i in range(size):
            verify_inclusion(leaves[i], i, size, inclusion_path(i, leaves[:size]), root)
        for old in range(1, size + 1):
            path = consistency_path(old, leaves[:size])
            verify_consistency(old, size, root_hash(leaves[:old]), root, path)


def test_happy_path_probes_match_generated_proofs(hashes: dict[str, object]) -> None:
    leaves = [leaf_hash(bytes.fromhex(x)) for x in hashes["leaf_inputs_hex"]]  # type: ignore[attr-defined]
    for probe in _probes("inclusion"):
        if probe.name != "happy-path.json" or probe.parent.parent.name != "inclusion":
            continue
        d = json.loads(probe.read_text())
        want = [_b64(h) for h in d["proof"] or []]
        assert inclusion_path(d["leafIdx"], leaves[: d["treeSize"]]) == want
    for probe in _probes("consistency"):
        if probe.name != "happy-path.json":
            continue
        d = json.loads(probe.read_text())
        want = [_b64(h) for h in d["proof"] or []]
        assert consistency_path(d["size1"], leaves[: d["size2"]]) == want
