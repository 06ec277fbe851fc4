"""`healthbridge issuer admin ...`: bootstrap an admin, issue a token, act with it;
a GD admin's token cannot touch MO credentials from the command line either."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w
from argon2 import PasswordHasher
from click.testing import CliRunner

from healthbridge.cli import main
from issuer.admin import accounts
from issuer.config import render_config
from issuer.context import IssuerContext
from issuer.models import CredentialRow
from issuer.testing import enrol_directly, make_context, new_device


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8192))


def config_file(ctx: IssuerContext, tmp: Path) -> str:
    path = tmp / f"{ctx.region}.toml"
    path.write_bytes(tomli_w.dumps(render_config(ctx.config)).encode())
    return str(path)


def secret(tmp: Path, name: str, text: str) -> str:
    p = tmp / name
    p.write_text(text)
    p.chmod(0o600)
    return str(p)


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["issuer", "admin", *args])
    return r.exit_code, r.output


def test_bootstrap_admin_then_revoke_from_the_command_line(tmp_path: Path) -> None:
    gd = make_context(tmp_path, "GD")
    cfg = config_file(gd, tmp_path)
    pw = secret(tmp_path, "pw", "a long enough password\n")
    code, out = run(
        "create", "--config", cfg, "--username", "ops", "--role", "operator", "--password-file", pw
    )
    assert code == 0 and "created ops (operator) in region GD" in out
    tok = str(tmp_path / "ops.token")
    code, out = run("token", "--config", cfg, "--username", "ops", "--output", tok)
    assert code == 0 and Path(tok).stat().st_mode & 0o777 == 0o600
    idx = enrol_directly(gd, "G10000001", new_device()).issued.credential.status_index
    code, out = run(
        "revoke",
        "--config",
        cfg,
        "--token-file",
        tok,
        f"GD:{idx}",
        "--reason",
        "fraud",
        "--note",
        "scripted",
    )
    assert code == 0, out
    with gd.sessions() as s:
        assert s.query(CredentialRow).filter_by(status_index=idx).one().state == "revoked"
    code, out = run("find", "--config", cfg, "--token-file", tok, str(idx))
    assert code == 0 and "credential_revoked" in out and "revoked" in out
    # MO target with a GD token: refused, one line, no traceback.
    code, out = run(
        "revoke", "--config", cfg, "--token-file", tok, f"MO:{idx}", "--reason", "fraud"
    )
    assert code != 0 and "permission_denied" in out and "Traceback" not in out
    # Operators do not rotate keys.
    code, out = run("rotate-key", "--config", cfg, "--token-file", tok)
    assert code != 0 and "permission_denied" in out
    gd.dispose()


def test_gd_token_is_unknown_at_the_mo_issuer(tmp_path: Path) -> None:
    gd, mo = make_context(tmp_path, "GD"), make_context(tmp_path, "MO")
    gd_cfg, mo_cfg = config_file(gd, tmp_path), config_file(mo, tmp_path)
    pw = secret(tmp_path, "pw", "a long enough password")
    run(
        "create",
        "--config",
        gd_cfg,
        "--username",
        "ops",
        "--role",
        "operator",
        "--password-file",
        pw,
    )
    tok = str(tmp_path / "gd.token")
    run("token", "--config", gd_cfg, "--username", "ops", "--output", tok)
    idx = enrol_directly(mo, "M1000001", new_device()).issued.credential.status_index
    code, out = run(
        "revoke", "--config", mo_cfg, "--token-file", tok, f"MO:{idx}", "--reason", "fraud"
    )
    assert code != 0 and "unauthorized" in out
    with mo.sessions() as s:
        assert s.query(CredentialRow).filter_by(status_index=idx).one().state == "active"
    gd.dispose()
    mo.dispose()


def test_short_password_file_is_refused(tmp_path: Path) -> None:
    gd = make_context(tmp_path, "GD")
    code, out = run(
        "create",
        "--config",
        config_file(gd, tmp_path),
        "--username",
        "ops",
        "--role",
        "viewer",
        "--password-file",
        secret(tmp_path, "pw", "short"),
    )
    assert code != 0 and "12" in out
    gd.dispose()
