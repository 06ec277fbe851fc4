"""Health codes of other schemes are named, over every shared sample text.

The samples are the public EU DCC test data (eu-digital-green-certificates/dgc-testdata,
`PREFIX` field of every raw case: the exact QR text) and the SMART Health Cards
examples (smart-on-fhir/health-cards, the `-f-qr-code-numeric-value-*.txt` QR texts);
see ../shared/vectors/credentials/README.upstream-notes.md for provenance. The images
of the same samples, read by the station's decoder, are covered in
tests/verifier/test_foreign_codes.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from credential.foreign import ForeignScheme, recognise
from credential.verdict import Decision, Reason, describe
from credential.verify import verify_presentation
from tests.credential.conftest import World
from tests.support.environment import vector_path


def dcc_prefix_texts(root: Path) -> list[tuple[str, str]]:
    """(file, PREFIX) for every raw DCC case that has a PREFIX field."""
    out = []
    for path in sorted(root.rglob("*.json")):
        if "2dcode" not in str(path.parent).lower():
            continue
        case = json.loads(path.read_text(encoding="utf-8-sig"))
        if isinstance(case, dict) and isinstance(case.get("PREFIX"), str):
            out.append((str(path.relative_to(root)), case["PREFIX"]))
    return out


def expected_reason(text: str) -> Reason:
    # The DCC specification defines only the context identifier "HC1:"; the negative
    # cases H1-H3 (HL0:, HC2:, no prefix) are not DCC texts and stay unreadable.
    if text.startswith("HC1:"):
        return Reason.FOREIGN_EU_DCC
    if text.lower().startswith("shc:/"):
        return Reason.FOREIGN_SHC
    return Reason.MALFORMED


def test_every_eu_dcc_sample_text_is_named(world: World) -> None:
    samples = dcc_prefix_texts(vector_path("credentials", "dgc-testdata"))
    assert len(samples) >= 270
    named = 0
    for name, text in samples:
        verdict = verify_presentation(text, world.trust, world.now)
        assert verdict.decision is Decision.DENY, name
        assert verdict.reasons == (expected_reason(text),), name
        assert verdict.display is None and verdict.region is None, name
        named += verdict.reasons == (Reason.FOREIGN_EU_DCC,)
    # Every sample but the three prefix-negative cases (HL0:, HC2:, none) is a DCC.
    assert named == len(samples) - 3


def test_every_smart_health_card_sample_text_is_named(world: World) -> None:
    root = vector_path("credentials", "shc-examples")
    paths = sorted(root.rglob("*-f-qr-code-numeric-value-*.txt"))
    assert len(paths) >= 6  # four examples, one of them in three chunks
    for path in paths:
        text = path.read_text().strip()
        verdict = verify_presentation(text.encode("ascii"), world.trust, world.now)
        assert verdict.reasons == (Reason.FOREIGN_SHC,), path.name
        assert verdict.decision is Decision.DENY


@pytest.mark.parametrize(
    ("text", "scheme"),
    [
        ("HC1:6BFOXN%TS3DH0YOJ58S", ForeignScheme.EU_DCC),
        ("HC1:", ForeignScheme.EU_DCC),
        ("shc:/56762909524320603460292437404460", ForeignScheme.SMART_HEALTH_CARD),
        ("shc:/1/3/5676290952432060346029", ForeignScheme.SMART_HEALTH_CARD),
        ("SHC:/5676", ForeignScheme.SMART_HEALTH_CARD),  # RFC 3986 §3.1: scheme is caseless
        ("hc1:6BFOXN", None),  # the DCC context identifier is upper case only
        ("HC2:6BFOXN", None),
        ("HL0:6BFOXN", None),
        ("shc:5676", None),
        ("HB1:ABCD", None),
        ("", None),
    ],
)
def test_scheme_is_recognised_by_its_prefix_only(text: str, scheme: ForeignScheme | None) -> None:
    assert recognise(text) is scheme


def test_foreign_reasons_say_what_was_shown_and_that_it_is_refused() -> None:
    assert "EU Digital COVID Certificate" in describe(Reason.FOREIGN_EU_DCC)
    assert "SMART Health Card" in describe(Reason.FOREIGN_SHC)
    for reason in (Reason.FOREIGN_EU_DCC, Reason.FOREIGN_SHC):
        assert "not accepted at this checkpoint" in describe(reason)
