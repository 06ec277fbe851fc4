"""The witness: tlog-witness add-checkpoint answers, atomic state, fork evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.joint.witness import (
    AddCheckpointRequest,
    EvidenceKind,
    ForkError,
    InconsistentError,
    LogSignatureError,
    MalformedRequestError,
    OldSizeMismatchError,
    RuleRefusedError,
    UnknownLogError,
    Witness,
    WitnessStore,
)
from ledger.log.checkpoint import CosignatureVerifier, cosignature_vkey, verify_cosignature
from tests.support.ledger_joint import MemoryLog, consortium_of, member_keys


@pytest.fixture
def setup(tmp_path: Path):
    gd, mo = member_keys("GD"), member_keys("MO")
    consortium = consortium_of(gd, mo)
    store = WitnessStore.open(f"sqlite:///{tmp_path / 'w.db'}")
    witness = Witness(consortium, mo.witness_signer, store, clock=lambda: 1_700_000_000)
    log = MemoryLog(gd)
    return witness, log, mo, store


def request(log: MemoryLog, old: int, size: int | None = None) -> bytes:
    return AddCheckpointRequest(old, tuple(log.proof(old, size)), log.signed(size)).render()


def test_request_round_trips() -> None:
    req = AddCheckpointRequest(3, (b"a" * 32, b"b" * 32), b"origin\n1\nroot\n\n- sig\n")
    assert AddCheckpointRequest.parse(req.render()) == req


@pytest.mark.parametrize(
    "body",
    [b"", b"old 1\n", b"old 01\n\nx", b"new 1\n\nx", b"old 1\nnot base64!\n\nx",
     b"old 1\nAAAA\n\nx", b"old \xff\n\nx", b"old 1\n" + b"A" * 70000,
     b"old 1" + b"0" * 4301 + b"\n\nx", b"old 1" + b"0" * 20 + b"\n\nx"],
)  # fmt: skip
def test_malformed_requests_get_400(body: bytes) -> None:
    with pytest.raises(MalformedRequestError) as info:
        AddCheckpointRequest.parse(body)
    assert info.value.status == 400


def test_witness_cosigns_growing_log_and_refuses_stale_old_size(setup) -> None:
    witness, log, mo, _ = setup
    log.leaves += [b"a", b"b", b"c"]
    line = witness.add_checkpoint(request(log, 0))
    verifier = CosignatureVerifier.from_vkey(cosignature_vkey(mo.witness_signer))
    assert verify_cosignature(log.checkpoint(), line, verifier) == 1_700_000_000
    log.leaves += [b"d", b"e"]
    witness.add_checkpoint(request(log, 3))
    with pytest.raises(OldSizeMismatchError) as info:
        witness.add_checkpoint(request(log, 3))
    assert (info.value.status, info.value.latest_size) == (409, 5)
    # Same checkpoint again: cosigned again (idempotent).
    witness.add_checkpoint(request(log, 5))


def test_unknown_origin_is_404_and_bad_signature_403(setup) -> None:
    witness, log, _, _ = setup
    log.leaves.append(b"a")
    stranger = MemoryLog(member_keys("XX"))
    stranger.leaves.append(b"a")
    with pytest.raises(UnknownLogError) as info:
        witness.add_checkpoint(request(stranger, 0))
    assert info.value.status == 404
    forged = MemoryLog(member_keys("GD"))  # same origin, another key
    forged.leaves.append(b"a")
    with pytest.raises(LogSignatureError) as info2:
        witness.add_checkpoint(request(forged, 0))
    assert info2.value.status == 403


def test_old_size_beyond_checkpoint_is_400(setup) -> None:
    witness, log, _, _ = setup
    log.leaves.append(b"a")
    body = AddCheckpointRequest(5, (), log.signed()).render()
    with pytest.raises(MalformedRequestError):
        witness.add_checkpoint(body)


def test_witness_refuses_fork_and_keeps_evidence(setup) -> None:
    witness, log, _, store = setup
    log.leaves += [b"a", b"b"]
    witness.add_checkpoint(request(log, 0))
    held = log.signed()
    log.leaves[1] = b"B"  # the log rewrites history and signs a new root for size 2
    with pytest.raises(ForkError) as info:
        witness.add_checkpoint(request(log, 2))
    assert info.value.status == 409
    [ev] = store.evidence()
    assert ev.kind is EvidenceKind.SAME_SIZE_OTHER_ROOT
    assert ev.held_note == held and ev.conflicting_note == log.signed()
    assert store.latest(log.keys.origin).note == held  # state unchanged


def test_inconsistent_proof_is_422_with_evidence(setup) -> None:
    witness, log, _, store = setup
    log.leaves += [b"a", b"b", b"c"]
    witness.add_checkpoint(request(log, 0))
    log.leaves[0] = b"X"
    log.leaves.append(b"d")
    with pytest.raises(InconsistentError) as info:
        witness.add_checkpoint(request(log, 3))
    assert info.value.status == 422
    assert store.evidence()[0].kind is EvidenceKind.INCONSISTENT_PROOF


def test_validator_refusal_names_the_rule_and_cosigns_nothing(setup) -> None:
    witness, log, _, store = setup

    def refuse(latest, opened):
        raise RuleRefusedError("GD revoked an MO credential", "WRONG_REGION", 0)

    witness.validator = refuse
    log.leaves.append(b"a")
    with pytest.raises(RuleRefusedError) as info:
        witness.add_checkpoint(request(log, 0))
    assert info.value.rule == "WRONG_REGION" and info.value.status == 422
    assert store.latest(log.keys.origin) is None
    assert store.evidence()[0].kind is EvidenceKind.RULE_VIOLATION


def test_state_survives_restart(setup, tmp_path: Path) -> None:
    witness, log, mo, _ = setup
    log.leaves += [b"a", b"b"]
    witness.add_checkpoint(request(log, 0))
    again = Witness(witness.consortium, mo.witness_signer,
                    WitnessStore.open(f"sqlite:///{tmp_path / 'w.db'}"))  # fmt: skip
    with pytest.raises(OldSizeMismatchError) as info:
        again.add_checkpoint(request(log, 0))
    assert info.value.latest_size == 2


@pytest.mark.postgres
def test_witness_state_and_evidence_on_postgresql(fresh_postgres_url: str) -> None:
    gd, mo = member_keys("GD"), member_keys("MO")
    store = WitnessStore.open(fresh_postgres_url)
    witness = Witness(consortium_of(gd, mo), mo.witness_signer, store)
    log = MemoryLog(gd)
    log.leaves += [b"a", b"b"]
    witness.add_checkpoint(request(log, 0))
    log.leaves[0] = b"A"
    with pytest.raises(ForkError):
        witness.add_checkpoint(request(log, 2))
    assert store.latest(gd.origin).size == 2
    assert [e.kind for e in store.evidence()] == [EvidenceKind.SAME_SIZE_OTHER_ROOT]
    store.engine.dispose()


def test_bogus_proof_line_from_anyone_is_422_and_keeps_nothing(setup, caplog) -> None:
    witness, log, _, store = setup
    log.leaves += [b"a", b"b", b"c"]
    witness.add_checkpoint(request(log, 0))
    log.leaves.append(b"d")
    genuine = log.signed()
    for i in range(200):
        body = AddCheckpointRequest(3, (bytes([i % 256]) * 32,), genuine).render()
        with pytest.raises(InconsistentError) as info:
            witness.add_checkpoint(body)
        assert info.value.status == 422
    assert store.evidence() == []
    assert "ledger_alarm" not in caplog.text and "ALARM" not in caplog.text
    witness.add_checkpoint(request(log, 3))  # the honest request still goes through


def test_repeated_fork_is_one_incident_and_one_alarm(setup, caplog) -> None:
    witness, log, _, store = setup
    log.leaves += [b"a", b"b"]
    witness.add_checkpoint(request(log, 0))
    log.leaves[1] = b"B"
    for _ in range(5):  # the forked log's collector retries every few seconds
        with pytest.raises(ForkError):
            witness.add_checkpoint(request(log, 2))
    assert len(store.evidence()) == 1
    assert caplog.text.count("security event ledger_alarm") == 1


def test_evidence_is_bounded_per_origin(setup, monkeypatch) -> None:
    import ledger.joint.witness

    monkeypatch.setattr(ledger.joint.witness, "MAX_EVIDENCE_PER_ORIGIN", 3)
    witness, log, _, store = setup
    log.leaves += [b"a", b"b"]
    witness.add_checkpoint(request(log, 0))
    for i in range(6):
        log.leaves[1] = bytes([i])
        with pytest.raises(ForkError):
            witness.add_checkpoint(request(log, 2))
    assert len(store.evidence()) == 3


def test_checkpoint_without_revocation_commitment_is_refused_when_required(
    tmp_path: Path,
) -> None:
    import dataclasses

    from ledger.joint.witness import MissingCommitmentError
    from ledger.log.checkpoint import Checkpoint, signed_checkpoint
    from ledger.log.revocation import render_extension

    gd, mo = member_keys("GD"), member_keys("MO")
    consortium = dataclasses.replace(consortium_of(gd, mo), require_revocation_commitment=True)
    store = WitnessStore.open(f"sqlite:///{tmp_path / 'w.db'}")
    witness = Witness(consortium, mo.witness_signer, store, clock=lambda: 1_700_000_000)
    log = MemoryLog(gd)
    log.leaves.append(b"a")
    with pytest.raises(MissingCommitmentError) as info:
        witness.add_checkpoint(request(log, 0))
    assert info.value.status == 422 and store.evidence() == []
    assert store.latest(gd.origin) is None
    cp = log.checkpoint()
    committed = Checkpoint(cp.origin, cp.size, cp.root_hash, (render_extension(b"\x01" * 32),))
    note = signed_checkpoint(committed, gd.log_signer)
    witness.add_checkpoint(AddCheckpointRequest(0, (), note).render())
    assert store.latest(gd.origin).size == 1
