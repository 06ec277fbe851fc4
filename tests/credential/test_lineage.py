"""Conversion lineage: a converted credential names its source and falls with it.

A GD credential converted into an MO credential used to stay ADMIT after GD revoked the
GD credential. The MO credential now carries `src` (GD and the status index) and a
station DENYs it `source_revoked` from GD's revocation state, with no delay.
"""

from __future__ import annotations

import pytest

from credential.claims import SourceRef
from credential.errors import ClaimsError, MalformedError, SourceRevokedError
from credential.issue import split_jws
from credential.keys import b64url
from credential.payload import claims_from_json, claims_to_json, decode_payload, deflate
from credential.presentation import make_presentation
from credential.verdict import Decision, Reason, StationPolicy, describe
from credential.verify import check_presentation, verify_presentation
from tests.credential.conftest import World
from tests.credential.test_verify import denied_for, forge

GD_INDEX = 424_242


def converted(world: World, **changes: object) -> str:
    """An MO credential converted from the world's GD credential (index GD_INDEX)."""
    fields: dict[str, object] = {
        "region": "MO",
        "kid": world.mo_kid,
        "status_index": 7,
        "source": SourceRef("GD", GD_INDEX),
    }
    fields.update(changes)
    return world.credential(world.mo_key, **fields)


def test_source_claim_round_trips_through_the_payload(world: World) -> None:
    claims = world.claims(region="MO", kid=world.mo_kid, source=SourceRef("GD", 12))
    raw = claims_to_json(claims)
    assert b'"src":{"i":12,"r":"GD"}' in raw
    assert claims_from_json(raw, world.mo_kid) == claims
    plain = world.claims()
    assert b"src" not in claims_to_json(plain)
    assert claims_from_json(claims_to_json(plain), world.gd_kid).source is None


def test_converted_credential_is_admitted_while_its_source_stands(world: World) -> None:
    text = make_presentation(converted(world), world.device, world.now)
    assert verify_presentation(text, world.trust, world.now).decision is Decision.ADMIT


def test_conversion_whose_source_was_revoked_is_denied_source_revoked(world: World) -> None:
    text = make_presentation(converted(world), world.device, world.now)
    world.trust.revoked.add(("GD", GD_INDEX))
    denied_for(world, text, Reason.SOURCE_REVOKED)
    with pytest.raises(SourceRevokedError):
        check_presentation(text, world.trust, world.now)
    assert "converted" in describe(Reason.SOURCE_REVOKED)


def test_a_revoked_index_of_the_target_region_does_not_hit_the_source(world: World) -> None:
    text = make_presentation(converted(world), world.device, world.now)
    world.trust.revoked.add(("MO", GD_INDEX))  # same number, other region
    assert verify_presentation(text, world.trust, world.now).admitted


def test_conversion_from_a_region_outside_the_consortium_is_refused(world: World) -> None:
    text = make_presentation(converted(world, source=SourceRef("XX", 1)), world.device, world.now)
    denied_for(world, text, Reason.UNKNOWN_REGION)


def test_stale_source_region_view_makes_revocation_unknown(world: World) -> None:
    text = make_presentation(converted(world), world.device, world.now)
    world.trust.sync_times["GD"] = world.now - 7 * 24 * 3600
    denied_for(world, text, Reason.REVOCATION_UNKNOWN)
    lenient = StationPolicy(on_revocation_unknown=Decision.MANUAL_CHECK)
    v = verify_presentation(text, world.trust, world.now, policy=lenient)
    assert v.decision is Decision.MANUAL_CHECK and Reason.REVOCATION_UNKNOWN in v.reasons


def test_a_source_in_the_same_region_cannot_be_built() -> None:
    with pytest.raises(ClaimsError):
        SourceRef("gd", 1)
    with pytest.raises(ClaimsError):
        SourceRef("GD", -1)


def test_source_naming_its_own_region_is_malformed(world: World) -> None:
    with pytest.raises(ClaimsError):
        world.claims(source=SourceRef("GD", 1))
    raw = claims_to_json(world.claims()).replace(b'"sti"', b'"src":{"i":1,"r":"GD"},"sti"')
    with pytest.raises(MalformedError):
        claims_from_json(raw, world.gd_kid)


@pytest.mark.parametrize(
    "src",
    [b'"src":1', b'"src":{"i":1}', b'"src":{"i":"1","r":"MO"}', b'"src":{"i":1,"r":"MO","x":0}'],
)
def test_malformed_source_claims_are_refused(world: World, src: bytes) -> None:
    raw = claims_to_json(world.claims()).replace(b'"sti"', src + b',"sti"')
    with pytest.raises(MalformedError):
        claims_from_json(raw, world.gd_kid)
    parts = split_jws(world.credential())
    text = forge(world, parts.header, deflate(raw), parts.signature)
    denied_for(world, text, Reason.MALFORMED)


def test_source_claim_cannot_be_stripped(world: World) -> None:
    """Dropping `src` changes the signed payload: the issuer signature fails."""
    jws = converted(world)
    parts = split_jws(jws)
    claims = decode_payload(parts.payload, world.mo_kid)
    stripped = deflate(claims_to_json(claims.__class__(**{**claims.__dict__, "source": None})))
    text = forge(world, parts.header, stripped, parts.signature)
    world.trust.revoked.add(("GD", GD_INDEX))
    denied_for(world, text, Reason.BAD_SIGNATURE)
    assert b64url(parts.payload) in jws
