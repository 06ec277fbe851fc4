"""C2SP signed-note@v1.0.0 with Ed25519: the golang.org/x/mod sumdb/note vectors
(notes-and-trees.json, BSD-3-Clause, copied there as data) and malformed notes."""

from __future__ import annotations

import json

import pytest

from ledger.log.errors import NoteError, NoteFormatError, NoteKeyError, NoteVerificationError
from ledger.log.note import (
    MAX_SIGNATURES,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    SignedNote,
    open_note,
    sign_note,
)
from tests.support.environment import vector_path


@pytest.fixture(scope="module")
def vec() -> dict[str, object]:
    data = json.loads(vector_path("ledger", "notes-and-trees.json").read_text())
    return data["signed_note"]  # type: ignore[no-any-return]


def test_signing_reproduces_the_golden_note_byte_for_byte(vec: dict[str, str]) -> None:
    signer = NoteSigner.from_skey(vec["signer_key"])
    assert signer.skey() == vec["signer_key"]
    assert signer.verifier().vkey() == vec["verifier_key"]
    assert sign_note(vec["text"], [signer]).decode() == vec["signed_note"]


def test_golden_note_opens_with_its_verifier_key(vec: dict[str, str]) -> None:
    verifier = NoteVerifier.from_vkey(vec["verifier_key"])
    note = open_note(vec["signed_note"].encode(), [verifier])
    assert note.text == vec["text"]
    assert [s.name for s in note.verified] == ["PeterNeumann"]
    assert note.render() == vec["signed_note"].encode()


def test_one_verified_signature_and_one_unknown_is_accepted(vec: dict[str, str]) -> None:
    data = (vec["signed_note"] + vec["second_signature_line"]).encode()
    note = open_note(data, [NoteVerifier.from_vkey(vec["verifier_key"])])
    assert [s.name for s in note.signatures] == ["PeterNeumann", "EnochRoot"]
    assert [s.name for s in note.verified] == ["PeterNeumann"]
    assert note.render() == data


def test_both_known_signatures_verify(vec: dict[str, str]) -> None:
    data = (vec["signed_note"] + vec["second_signature_line"]).encode()
    verifiers = [NoteVerifier.from_vkey(vec[k]) for k in ("verifier_key", "second_verifier_key")]
    note = open_note(data, verifiers)
    assert [s.name for s in note.verified] == ["PeterNeumann", "EnochRoot"]


def test_only_unknown_signatures_is_rejected(vec: dict[str, str]) -> None:
    data = (vec["signed_note"] + vec["second_signature_line"]).encode()
    other, _ = NoteSigner.generate("someone.example")
    with pytest.raises(NoteVerificationError, match="found none"):
        open_note(data, [NoteSigner.from_skey(other).verifier()])


def test_known_key_with_a_bad_signature_rejects_the_note(vec: dict[str, str]) -> None:
    verifier = NoteVerifier.from_vkey(vec["verifier_key"])
    tampered = vec["signed_note"].replace("cryptography", "Cryptography").encode()
    with pytest.raises(NoteVerificationError):
        open_note(tampered, [verifier])


def test_same_name_different_key_id_is_ignored(vec: dict[str, str]) -> None:
    skey, _ = NoteSigner.generate("PeterNeumann")
    impostor = NoteSigner.from_skey(skey)
    data = sign_note(vec["text"], [impostor]).decode() + vec["second_signature_line"]
    with pytest.raises(NoteVerificationError, match="found none"):
        open_note(data.encode(), [NoteVerifier.from_vkey(vec["verifier_key"])])


def test_malformed_verifier_keys_are_refused(vec: dict[str, list[str]]) -> None:
    for bad in vec["bad_verifier_keys"]:
        with pytest.raises(NoteKeyError):
            NoteVerifier.from_vkey(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",
        "PeterNeumann+c74f20a3+",
    ],
)
def test_more_malformed_verifier_keys_are_refused(bad: str) -> None:
    with pytest.raises(NoteKeyError):
        NoteVerifier.from_vkey(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",  # no prefix
        "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKD",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+BYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    ],
)
def test_malformed_signer_keys_are_refused(bad: str) -> None:
    with pytest.raises(NoteKeyError):
        NoteSigner.from_skey(bad)


def test_generated_keys_sign_and_verify() -> None:
    skey, vkey = NoteSigner.generate("gd.healthbridge.example/log")
    signer = NoteSigner.from_skey(skey)
    data = sign_note("hello\n", [signer])
    assert open_note(data, [NoteVerifier.from_vkey(vkey)]).text == "hello\n"


def _line(name: str = "k") -> str:
    return f"— {name} AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"text\n",  # no signatures at all
        ("text\n\n" + _line()[:-1]).encode(),  # no trailing newline
        ("text\n" + _line()).encode(),  # no blank line
        ("text\n\n" + _line() + "\n").encode(),  # trailing blank line
        b"text\n\n\xe2\x80\x94 k !!!notbase64!!!\n",
        b"text\n\n\xe2\x80\x94 k AAAA\n",  # too short for a key id and a signature
        b"text\n\n\xe2\x80\x94 k AAAAAA==\n",  # only a key id
        b"text\n\n- k AAAAAAAAAAAA\n",  # hyphen, not em dash
        b"text\n\n\xe2\x80\x94 a+b AAAAAAAAAAAA\n",  # '+' in the key name
        b"text\n\n\xe2\x80\x94  AAAAAAAAAAAA\n",  # empty key name
        b"text\n\n\xe2\x80\x94 k AAAAAAAAAAAA extra\n",
        b"te\txt\n\n\xe2\x80\x94 k AAAAAAAAAAAA\n",  # control character
        b"te\rxt\n\n\xe2\x80\x94 k AAAAAAAAAAAA\n",
        b"\xff\xfe\n\n\xe2\x80\x94 k AAAAAAAAAAAA\n",  # invalid UTF-8
        b"text\n\n\xe2\x80\x94 k AAAAAAAAAAB=\n",  # non-canonical base64 padding bits
        ("text\n\n" + _line() * (MAX_SIGNATURES + 1)).encode(),  # too many signatures
        b"x" * (2 << 20),  # too large
    ],
)
def test_malformed_notes_are_rejected_with_a_typed_error(data: bytes) -> None:
    with pytest.raises(NoteFormatError):
        SignedNote.parse(data)


def test_the_last_blank_line_separates_text_from_signatures(vec: dict[str, str]) -> None:
    signer = NoteSigner.from_skey(vec["signer_key"])
    text = "para one\n\npara two\n"
    note = SignedNote.parse(sign_note(text, [signer]))
    assert note.text == text
    assert open_note(note.render(), [signer.verifier()]).text == text


def test_two_signatures_by_the_same_known_key_are_refused(vec: dict[str, str]) -> None:
    line = vec["signed_note"].split("\n\n")[1]
    data = (vec["signed_note"] + line).encode()
    with pytest.raises(NoteVerificationError):
        open_note(data, [NoteVerifier.from_vkey(vec["verifier_key"])])


def test_signing_refuses_text_without_final_newline_or_signers(vec: dict[str, str]) -> None:
    signer = NoteSigner.from_skey(vec["signer_key"])
    with pytest.raises(NoteFormatError):
        sign_note("no newline", [signer])
    with pytest.raises(NoteKeyError):
        sign_note("text\n", [])
    with pytest.raises(NoteVerificationError):
        open_note(vec["signed_note"].encode(), [])


def test_signature_line_round_trip() -> None:
    sig = NoteSignature("witness.example", 0xDEADBEEF, bytes(range(64)))
    assert NoteSignature.parse(sig.render()) == sig
    assert sig.render().startswith("— witness.example 3q2+7w")


def test_every_note_error_is_a_note_error() -> None:
    assert issubclass(NoteFormatError, NoteError)
    assert issubclass(NoteKeyError, NoteError)
    assert issubclass(NoteVerificationError, NoteError)
