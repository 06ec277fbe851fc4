"""bench/verify.py's ceiling is the same work as verification: the same keys, signatures
and messages, each device key used for the first time in each timed chunk."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.exceptions import InvalidSignature

from credential.issue import credential_digest
from credential.payload import decode_payload
from credential.presentation import parse_presentation, proof_signing_input, resolve_window
from credential.trust import InMemoryTrustState
from credential.verdict import Decision
from credential.verify import verify_presentation

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_verify", ROOT / "bench" / "verify.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(bench: ModuleType) -> tuple[InMemoryTrustState, list[str], list[tuple]]:
    return bench.build(4)  # type: ignore[no-any-return]


def test_ceiling_checks_the_bytes_verification_checks(
    bench: ModuleType, built: tuple[InMemoryTrustState, list[str], list[tuple]]
) -> None:
    trust, texts, raw = built
    for text, (_, _, issuer_msg, device_der, _, device_msg) in zip(texts, raw, strict=True):
        assert verify_presentation(text, trust, bench.NOW).decision is Decision.ADMIT
        p = parse_presentation(text)
        assert issuer_msg == p.signing_input
        claims = decode_payload(p.payload, p.canonical[1] if p.canonical else "")
        assert device_der == claims.holder_key
        window = resolve_window(p.window_tag, bench.NOW)
        assert device_msg == proof_signing_input(credential_digest(p.credential_jws), window, None)


def test_ceiling_device_keys_are_new_objects_for_every_chunk(
    bench: ModuleType, built: tuple[InMemoryTrustState, list[str], list[tuple]]
) -> None:
    _, _, raw = built
    first, second = bench.device_keys(raw), bench.device_keys(raw)
    assert all(a is not b and a == b for a, b in zip(first, second, strict=True))
    bench.ceiling_all(raw, first)  # raises InvalidSignature on any mismatch
    bench.one_shot_all(raw, second)


def test_ceiling_verifies_the_hash_of_the_very_messages(
    bench: ModuleType, built: tuple[InMemoryTrustState, list[str], list[tuple]]
) -> None:
    # The ceiling verifies SHA-256 hashes (Prehashed) as verification now does: a
    # message changed by one byte must fail there, as it fails the one-shot form.
    _, _, raw = built
    issuer, isig, imsg, dder, dsig, dmsg = raw[0]
    for bad in (
        (issuer, isig, imsg + b"x", dder, dsig, dmsg),
        (issuer, isig, imsg, dder, dsig, dmsg[:-1] + bytes([dmsg[-1] ^ 1])),
    ):
        for run in (bench.ceiling_all, bench.one_shot_all):
            with pytest.raises(InvalidSignature):
                run([bad], bench.device_keys([bad]))


def test_measure_reports_verification_and_the_three_ceilings(
    bench: ModuleType, built: tuple[InMemoryTrustState, list[str], list[tuple]]
) -> None:
    trust, texts, raw = built
    rates = bench.measure(trust, texts, raw, 1, 2)
    assert len(rates) == 4 and all(rate > 0 for rate in rates)
