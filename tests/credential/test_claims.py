"""Claims validate when built: region and key id forms hold on every construction,
whatever was built before (the checks remember names already judged)."""

from __future__ import annotations

import dataclasses

import pytest

from credential.claims import SourceRef
from credential.errors import ClaimsError
from tests.credential.conftest import World


@pytest.mark.parametrize("region", ["gd", "G", "GD\n", "GDGDGDGDG", "G1", "", "ＧＤ"])
def test_region_outside_two_to_eight_capitals_is_refused_every_time(
    world: World, region: str
) -> None:
    good = world.claims()
    for _ in range(2):
        with pytest.raises(ClaimsError, match="region"):
            dataclasses.replace(good, region=region)
        with pytest.raises(ClaimsError, match="source region"):
            SourceRef(region, 1)
        assert dataclasses.replace(good, region="MO").region == "MO"


@pytest.mark.parametrize("kid", ["abc", "a" * 65, "abc!", "abcd\n", "abc d", "abcé"])
def test_kid_outside_the_base64url_form_is_refused_every_time(world: World, kid: str) -> None:
    good = world.claims()
    for _ in range(2):
        with pytest.raises(ClaimsError, match="kid"):
            dataclasses.replace(good, kid=kid)
        assert dataclasses.replace(good, kid="abcd").kid == "abcd"


def test_claims_stay_frozen_equal_and_hashable_as_dataclasses(world: World) -> None:
    # HealthClaims writes its own __init__ (one store for every field, on every scan):
    # it must keep what the generated one gave.
    claims = world.claims()
    twin = world.claims()
    assert claims == twin and hash(claims) == hash(twin) and claims is not twin
    assert dataclasses.replace(claims, status_index=7) != claims
    assert [f.name for f in dataclasses.fields(claims)][-1] == "source"
    assert claims.source is None  # the default
    with pytest.raises(dataclasses.FrozenInstanceError):
        claims.region = "MO"  # type: ignore[misc]
    assert dataclasses.asdict(claims)["masked_name"] == claims.masked_name
