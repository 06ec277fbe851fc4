"""C2SP tlog-checkpoint@v1.0.0 and tlog-cosignature@v1.0.1 against Sunlight's skylight
fixture (the shared vectors, vectors/ledger/tiles-skylight, ISC licence): cosigned
checkpoints of witness, witness2 and mirror; their private seeds are SHA-256 of known strings, so
cosignatures are reproduced byte for byte at timestamp 1767139200."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from ledger.log.checkpoint import (
    Checkpoint,
    CosignatureVerifier,
    attach_signatures,
    cosign,
    cosignature_vkey,
    open_checkpoint,
    signed_checkpoint,
    verify_cosignature,
)
from ledger.log.errors import CheckpointError, CosignatureError, NoteError
from ledger.log.note import NoteSigner, SignedNote, open_note
from tests.support.environment import vector_path

TIMESTAMP = 1767139200
LOG_HASH = "000de184301123b9278c086a7d9f68c9577e83872224c197058fd90784ea9706"
MILAN_HASH = "88ad7a28caeb0b2aa890fdf0304c2fcaf59fca2ee140134ff8c1300bac493482"
FIXTURES = [
    # (name, seed string, key file, cosigned checkpoint)
    (
        "witness.example.org",
        "skylight test witness key",
        "witness/witness.v0.json",
        f"witness/{LOG_HASH}/checkpoint",
    ),
    (
        "witness2.example.org",
        "skylight test witness2 key",
        "witness2/witness.v0.json",
        f"witness2/{MILAN_HASH}/checkpoint",
    ),
    (
        "mirror.example.org",
        "skylight test mirror key",
        "witness/mirror/mirror.v0.json",
        f"witness/mirror/{LOG_HASH}/checkpoint",
    ),
]


def _signer(name: str, seed: str) -> NoteSigner:
    return NoteSigner.from_seed(name, hashlib.sha256(seed.encode()).digest())


def _vkey(key_file: str) -> str:
    doc = json.loads(vector_path("ledger", "tiles-skylight", key_file).read_text())
    (vkey,) = doc["verifier_keys"]
    return str(vkey)


@pytest.mark.parametrize(("name", "seed", "key_file", "cp_file"), FIXTURES)
def test_skylight_cosigned_checkpoint_verifies(
    name: str, seed: str, key_file: str, cp_file: str
) -> None:
    verifier = CosignatureVerifier.from_vkey(_vkey(key_file))
    data = vector_path("ledger", "tiles-skylight", cp_file).read_bytes()
    note = open_note(data, [verifier])
    assert [s.name for s in note.verified] == [name]
    checkpoint = Checkpoint.parse(note.text)
    assert checkpoint.size == 300
    sig = next(s for s in note.signatures if s.name == name)
    assert verify_cosignature(checkpoint, sig, verifier) == TIMESTAMP


@pytest.mark.parametrize(("name", "seed", "key_file", "cp_file"), FIXTURES)
def test_skylight_cosignatures_are_reproduced_byte_for_byte(
    name: str, seed: str, key_file: str, cp_file: str
) -> None:
    signer = _signer(name, seed)
    assert cosignature_vkey(signer) == _vkey(key_file)
    data = vector_path("ledger", "tiles-skylight", cp_file).read_bytes()
    checkpoint = Checkpoint.parse(SignedNote.parse(data).text)
    line = cosign(checkpoint, signer, TIMESTAMP)
    assert line in data.decode()
    assert data.decode().endswith(line)


def test_skylight_decoys_are_not_checkpoints() -> None:
    for decoy in ("witness/checkpoint", "witness/mirror/checkpoint", "tree/tile/0/000"):
        data = vector_path("ledger", "tiles-skylight", decoy).read_bytes()
        with pytest.raises(NoteError):
            SignedNote.parse(data)


def test_cosignature_over_another_checkpoint_is_rejected() -> None:
    name, _seed, key_file, cp_file = FIXTURES[0]
    verifier = CosignatureVerifier.from_vkey(_vkey(key_file))
    data = vector_path("ledger", "tiles-skylight", cp_file).read_bytes()
    note = SignedNote.parse(data)
    sig = next(s for s in note.signatures if s.name == name)
    other = Checkpoint.parse(note.text)
    forged = Checkpoint(other.origin, other.size + 1, other.root_hash)
    with pytest.raises(CosignatureError):
        verify_cosignature(forged, sig, verifier)
    # Changing the timestamp bytes breaks the signature too.
    bumped = sig.signature[:7] + bytes([sig.signature[7] ^ 1]) + sig.signature[8:]
    with pytest.raises(CosignatureError):
        verify_cosignature(other, type(sig)(sig.name, sig.key_id, bumped), verifier)
    # A cosignature by another witness is not this witness's cosignature.
    with pytest.raises(CosignatureError):
        verify_cosignature(other, sig, CosignatureVerifier.from_vkey(_vkey(FIXTURES[1][2])))


def test_tampered_cosigned_checkpoint_note_is_rejected() -> None:
    _, _, key_file, cp_file = FIXTURES[0]
    verifier = CosignatureVerifier.from_vkey(_vkey(key_file))
    data = vector_path("ledger", "tiles-skylight", cp_file).read_bytes()
    with pytest.raises(NoteError):
        open_note(data.replace(b"\n300\n", b"\n301\n"), [verifier])


def test_checkpoint_round_trip_with_extensions() -> None:
    cp = Checkpoint("gd.healthbridge.example/log", 20852163, bytes(range(32)), ("ext a", "b"))
    text = cp.render()
    assert text.startswith("gd.healthbridge.example/log\n20852163\nAAECAwQF")
    assert text.endswith("\next a\nb\n")
    assert Checkpoint.parse(text) == cp
    empty = Checkpoint("o", 0, hashlib.sha256(b"").digest())
    assert Checkpoint.parse(empty.render()) == empty


ROOT = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "origin\n5\n",  # two lines
        f"origin\n5\n{ROOT}",  # no final newline
        f"origin\n05\n{ROOT}\n",  # leading zero
        f"origin\n-5\n{ROOT}\n",
        f"origin\n+5\n{ROOT}\n",
        f"origin\n 5\n{ROOT}\n",
        f"origin\nfive\n{ROOT}\n",
        f"origin\n{2**63}\n{ROOT}\n",
        "origin\n5\nAAAA\n",  # root not 32 bytes
        f"origin\n5\n{ROOT[:-1]}\n",  # bad base64
        f"\n5\n{ROOT}\n",  # empty origin
        f"origin\n5\n{ROOT}\n\n",  # empty extension line
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse(text)


def test_log_checkpoint_with_two_witness_cosignatures_opens() -> None:
    log_skey, log_vkey = NoteSigner.generate("gd.healthbridge.example/log")
    log = NoteSigner.from_skey(log_skey)
    witnesses = [_signer(name, seed) for name, seed, _, _ in FIXTURES[:2]]
    cp = Checkpoint(log.name, 7, hashlib.sha256(b"x").digest())
    signed = signed_checkpoint(cp, log)
    cosigned = attach_signatures(
        signed, [cosign(cp, w, TIMESTAMP + i) for i, w in enumerate(witnesses)]
    )
    # Re-attaching the same line does not duplicate it.
    assert attach_signatures(cosigned, [cosign(cp, witnesses[0], TIMESTAMP)]) == cosigned
    verifiers = [CosignatureVerifier.from_vkey(cosignature_vkey(w)) for w in witnesses]
    opened = open_checkpoint(cosigned, log.verifier(), verifiers)
    assert opened.checkpoint == cp
    assert opened.cosignatures == {
        "witness.example.org": TIMESTAMP,
        "witness2.example.org": TIMESTAMP + 1,
    }
    # Without the log's own signature nothing opens, whatever the witnesses say.
    other_skey, _ = NoteSigner.generate("gd.healthbridge.example/log")
    with pytest.raises(CheckpointError):
        open_checkpoint(cosigned, NoteSigner.from_skey(other_skey).verifier(), verifiers)
    assert log_vkey == log.verifier().vkey()


def test_a_bad_cosignature_by_a_known_witness_rejects_the_checkpoint() -> None:
    log = NoteSigner.from_skey(NoteSigner.generate("log.example")[0])
    witness = _signer(*FIXTURES[0][:2])
    cp = Checkpoint(log.name, 7, hashlib.sha256(b"x").digest())
    other = Checkpoint(log.name, 8, hashlib.sha256(b"y").digest())
    cosigned = attach_signatures(signed_checkpoint(cp, log), [cosign(other, witness, TIMESTAMP)])
    verifier = CosignatureVerifier.from_vkey(cosignature_vkey(witness))
    with pytest.raises(CosignatureError):
        open_checkpoint(cosigned, log.verifier(), [verifier])


def test_malformed_cosigner_keys_and_timestamps_are_refused() -> None:
    vkey = _vkey(FIXTURES[0][2])
    name, key_id, key = vkey.split("+", 2)
    for bad in (
        f"{name}+{key_id}+A{key[1:]}",  # type 0x01, not 0x04
        f"{name}+00000000+{key}",
        f"{name}+{key_id}+{key[:-4]}",
        "nonsense",
    ):
        with pytest.raises(CosignatureError):
            CosignatureVerifier.from_vkey(bad)
    cp = Checkpoint("o", 1, bytes(32))
    with pytest.raises(CosignatureError):
        cosign(cp, _signer(*FIXTURES[0][:2]), 2**63)
    with pytest.raises(CosignatureError):
        verify_cosignature(cp, "not a line", CosignatureVerifier.from_vkey(vkey))
