"""issuer.replica: every answer names the process that gave it, opaquely; a configured
name can never be an address, and the default one cannot be read back to a host."""

from __future__ import annotations

from pathlib import Path

import pytest

from issuer.app import create_app
from issuer.config import load_config
from issuer.errors import ConfigError
from issuer.replica import HEADER, replica_name
from issuer.testing import make_context


@pytest.mark.parametrize(
    "name", ["10.0.3.7", "10.0.3.7:8080", "fd00::17", "gd-issuer.internal", "", "-a", "a" * 33]
)
def test_replica_name_that_could_be_an_address_is_refused(tmp_path: Path, name: str) -> None:
    env = {"HB_ISSUER_REGION": "GD", "HB_ISSUER_DATA_DIR": str(tmp_path)}
    if name == "":
        assert load_config(env={**env, "HB_ISSUER_REPLICA_NAME": ""}).replica_name == ""
        return
    with pytest.raises(ConfigError, match="replica_name"):
        load_config(env={**env, "HB_ISSUER_REPLICA_NAME": name})


def test_every_answer_carries_the_configured_replica_name(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, replica_name="gd-issuer-2")
    c = create_app(ctx.config, context=ctx, start_workers=False).test_client()
    answers = [
        c.get("/v1/status"),  # 200
        c.get("/no/such/route"),  # 404
        c.post("/v1/enrolment", data=b"{not json", content_type="application/json"),  # 400
        c.get("/v1/credential"),  # 401
        c.get("/healthz"),
    ]
    assert [r.headers[HEADER] for r in answers] == ["gd-issuer-2"] * len(answers)
    assert {r.status_code for r in answers} >= {200, 400, 401, 404}


def test_default_replica_name_is_a_keyed_hash_of_host_and_process(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    name = replica_name(ctx, "gd-issuer-7f3a", 4242)
    assert name.startswith("r-") and len(name) == 14
    assert "7f3a" not in name and "4242" not in name
    assert replica_name(ctx, "gd-issuer-7f3a", 4242) == name  # stable for one process
    assert replica_name(ctx, "gd-issuer-7f3a", 4243) != name
    assert replica_name(ctx, "gd-issuer-9c01", 4242) != name
    other = make_context(tmp_path / "other")  # another key: another name, same host
    assert replica_name(other, "gd-issuer-7f3a", 4242) != name
    served = create_app(ctx.config, context=ctx, start_workers=False).test_client()
    assert served.get("/v1/status").headers[HEADER].startswith("r-")
