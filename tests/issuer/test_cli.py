"""`healthbridge issuer ...` end to end through click: init creates 0600 keys and a
database, imports load CSV files, keys rotate and revoke (as a key admin with a token,
audited; refused without one), errors are one line."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner

from common.secret_file import write_secret
from issuer import audit
from issuer.admin import accounts_db
from issuer.admin.accounts import Role
from issuer.cli import cli
from issuer.config import load_config
from issuer.context import IssuerContext
from issuer.models import CredentialRow, HealthRecordRow, Resident, SigningKeyRow


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_init_creates_private_files_with_mode_0600_and_a_registered_key(tmp_path: Path) -> None:
    out = run("init", "--region", "MO", "--data-dir", str(tmp_path))
    assert "root public key" in out
    cfg = load_config(tmp_path / "issuer.toml")
    secrets = [
        cfg.root_key_path,
        cfg.writer_key_path,
        cfg.authority_token_path,
        *cfg.signing_key_dir.iterdir(),
    ]
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # The database (names, document numbers, password hashes) is owner-only too, and
    # so are its SQLite side files.
    db = tmp_path / "issuer.db"
    for path in [db, *db.parent.glob("issuer.db-*")]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    listed = run("keys", "list", "--config", str(tmp_path / "issuer.toml"))
    assert "active" in listed


def key_admin_token(ctx: IssuerContext, tmp: Path) -> str:
    roles = frozenset({Role.KEY_ADMIN})
    accounts_db.create_account(
        ctx.sessions, "keys", ctx.region, roles, "a long pass phrase", ctx.now()
    )
    path = tmp / "keys.token"
    write_secret(
        path,
        accounts_db.issue_token(ctx.sessions, "keys", "test", ctx.now()).encode(),
        overwrite=True,
    )
    return str(path)


def test_imports_seed_and_key_rotation_and_compromise(tmp_path: Path) -> None:
    run("init", "--region", "MO", "--data-dir", str(tmp_path))
    conf = str(tmp_path / "issuer.toml")
    (tmp_path / "r.csv").write_text(
        "document_number,name,region\nM2000001,Maria da Silva,MO\nG2000001,王芳,GD\n",
        encoding="utf-8",
    )
    assert "residents added: 1" in run(
        "import-residents", "--config", conf, str(tmp_path / "r.csv")
    )
    (tmp_path / "h.csv").write_text(
        "document_number,kind,at,result\nM2000001,test,2026-01-01T00:00:00Z,negative\n"
        "M2000001,test,2026-01-01T00:00:00Z,negative\n",
        encoding="utf-8",
    )
    assert "records added: 1, duplicates: 1" in run(
        "import-records", "--config", conf, str(tmp_path / "h.csv")
    )
    run("seed-demo", "--config", conf)
    ctx = IssuerContext.open(load_config(Path(conf)))
    with ctx.sessions() as s:
        assert s.query(Resident).filter_by(region="MO").count() == 7
        assert s.query(Resident).filter_by(region="GD").count() == 0
        assert s.query(HealthRecordRow).count() >= 1
        old = s.query(SigningKeyRow).one().kid
    # Key changes act as a named admin: no token, no change.
    refused = CliRunner().invoke(cli, ["keys", "rotate", "--config", conf])
    assert refused.exit_code != 0 and "--token-file" in refused.output
    token = key_admin_token(ctx, tmp_path)
    run("keys", "rotate", "--config", conf, "--token-file", token)
    run(
        "keys", "revoke", "--config", conf, "--token-file", token, old,
        "--compromised-at", "1700000000",
    )  # fmt: skip
    with ctx.sessions() as s:
        states = {k.kid: k.state for k in s.query(SigningKeyRow)}
        assert states[old] == "compromised"
        assert sorted(states.values()) == ["active", "compromised"]
        assert s.query(CredentialRow).count() == 0
    assert not (ctx.config.signing_key_dir / f"{old}.pem").exists()
    with ctx.sessions() as s:
        actions = [(r.actor, r.action, r.channel, r.outcome) for r in audit.rows(s)]
    assert ("keys", "rotate_key", "cli", "ok") in actions
    assert ("keys", "revoke_key", "cli", "ok") in actions


def test_bad_csv_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    run("init", "--region", "MO", "--data-dir", str(tmp_path))
    (tmp_path / "bad.csv").write_text("document_number,kind,at\nM2000001,sneeze,5\n")
    result = CliRunner().invoke(
        cli,
        ["import-records", "--config", str(tmp_path / "issuer.toml"), str(tmp_path / "bad.csv")],
    )
    assert result.exit_code != 0
    assert "bad_record" in result.output and "Traceback" not in result.output


def test_binary_or_broken_import_files_get_a_typed_error(tmp_path: Path) -> None:
    run("init", "--region", "MO", "--data-dir", str(tmp_path))
    conf = str(tmp_path / "issuer.toml")
    junk = tmp_path / "photo.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    nul = tmp_path / "nul.csv"  # a NUL byte in a field: Python's csv reads it, we refuse it
    nul.write_bytes(b"document_number,name,kind,at\nM1\x00,x,vaccination,5\n")
    for command in ("import-residents", "import-records"):
        for path, words in ((junk, "not UTF-8"), (nul, "document_number")):
            result = CliRunner().invoke(cli, [command, "--config", conf, str(path)])
            assert result.exit_code != 0, (command, path)
            assert "bad_record" in result.output and words in result.output, result.output
            assert "Traceback" not in result.output


def test_import_accepts_a_spreadsheet_utf8_bom(tmp_path: Path) -> None:
    run("init", "--region", "MO", "--data-dir", str(tmp_path))
    csv_file = tmp_path / "residents.csv"
    csv_file.write_bytes("\ufeffdocument_number,name,region\nM7000001,陳大文,MO\n".encode())
    out = run("import-residents", "--config", str(tmp_path / "issuer.toml"), str(csv_file))
    assert "residents added: 1" in out


def test_dev_code_finds_a_code_by_document_number_in_a_file_without_numbers(
    tmp_path: Path,
) -> None:
    from issuer import enrolment

    run("init", "--region", "MO", "--data-dir", str(tmp_path))
    conf = str(tmp_path / "issuer.toml")
    run("seed-demo", "--config", conf)
    ctx = IssuerContext.open(load_config(tmp_path / "issuer.toml"))
    enrolment.request_code(ctx, "M1000001", "198.51.100.7")
    assert "M1000001" not in ctx.config.delivery_file.read_text()
    code = run("dev-code", "--config", conf, "--document", "M1000001").strip()
    assert len(code) == enrolment.CODE_DIGITS and code.isdigit()
    result = CliRunner().invoke(cli, ["dev-code", "--config", conf, "--document", "M9999999"])
    assert result.exit_code == 1 and "no code delivered" in result.output
