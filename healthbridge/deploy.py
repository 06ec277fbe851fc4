"""Provision the docker-compose deployment: every region's keys and generated configs.

`python -m healthbridge.deploy [--dir deploy]` writes, for GD and MO:

- `deploy/secrets/<region>/`: the issuer's root key, ledger writer key and bearer
  tokens (made by issuer.keystore.KeyStore), the ledger node's log and witness note keys
  (made by `healthbridge ledger init`), the PostgreSQL password and a libpq passfile
  for the services; every file mode 0600. Never commit this folder.
- `deploy/generated/<region>/node.toml` (the node as it runs in its container: keys
  under /run/secrets, PostgreSQL, the consortium under /etc/healthbridge), its public
  `member.toml`, and `deploy/generated/consortium.toml` (`healthbridge ledger
  consortium init`), the trust root handed to every node, issuer and station.

What it does not: start anything, or hold key logic of its own: keys come from the
components' own generators. The static configs (issuer.toml per region, the database
init script) are committed under deploy/ and need no generation.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import click
import tomli_w

from common.secret_file import write_secret
from healthbridge.demo_world import REGION_NAMES, DemoError, origin_of, run_cli

REGIONS = ("GD", "MO")
DB_USER = "healthbridge"
LEDGER_DB = "ledger"
DB_PORT = 5432
LEDGER_PORT = 8480  # the node's port inside its container
DB_PASSWORD_BYTES = 24  # random bytes of a PostgreSQL password
# Where the containers see their files (docker-compose.yml mounts them there).
CONTAINER_SECRETS = Path("/run/secrets")
CONTAINER_CONSORTIUM = Path("/etc/healthbridge/consortium.toml")
IMAGE_UID = 10001  # the Dockerfile's `healthbridge` user
POSTGRES_UID = 999  # the postgres image's `postgres` user, which reads the password file
ORIGIN_DOMAIN = "healthbridge.example"  # replace with the operators' own domain


@dataclass(frozen=True)
class RegionFiles:
    """The files provisioned for one region (paths on the host)."""

    region: str
    secrets: Path
    generated: Path

    @property
    def node_toml(self) -> Path:
        return self.generated / "node.toml"

    @property
    def member_toml(self) -> Path:
        return self.generated / "member.toml"


def host(region: str, service: str) -> str:
    """The compose service name of a region's service, e.g. gd-ledger."""
    return f"{region.lower()}-{service}"


def _issuer_keys(region: str, secrets_dir: Path, scratch: Path) -> tuple[str, str]:
    """The issuer's root and writer keys and tokens; returns the public keys (base64)."""
    from issuer.config import IssuerConfig
    from issuer.keystore import KeyStore
    from ledger.log.entries import root_public_key_bytes
    from ledger.node.config import encode_ed25519_public_key

    cfg = IssuerConfig(region=region, data_dir=scratch, key_dir=secrets_dir)
    keys = KeyStore(cfg)
    root = keys.create_root_key()
    writer = keys.create_writer_key()
    keys.create_token(cfg.authority_token_path)
    return (
        encode_ed25519_public_key(root_public_key_bytes(root)),
        encode_ed25519_public_key(root_public_key_bytes(writer)),
    )


def _ledger_node(region: str, files: RegionFiles, root: str, writer: str, stage: Path) -> None:
    """`ledger init` in a staging folder, then the node.toml as its container sees it."""
    run_cli(
        "ledger", "init", "--region", region, "--origin", origin_of(region, ORIGIN_DOMAIN),
        "--dir", str(stage), "--root-public-key", root, "--writer-public-key", writer,
        "--url", f"http://{host(region, 'ledger')}:{LEDGER_PORT}",
        "--name", REGION_NAMES.get(region, region),
        "--consortium", str(CONTAINER_CONSORTIUM),
    )  # fmt: skip
    for name in ("log.skey", "witness.skey"):
        os.replace(stage / name, files.secrets / name)  # keeps mode 0600
    doc = tomllib.loads((stage / "node.toml").read_text(encoding="utf-8"))
    doc.update(
        log_key_file=str(CONTAINER_SECRETS / "log.skey"),
        witness_key_file=str(CONTAINER_SECRETS / "witness.skey"),
        database_url=(f"postgresql+psycopg://{DB_USER}@{host(region, 'db')}:{DB_PORT}/{LEDGER_DB}"),
        consortium_file=str(CONTAINER_CONSORTIUM),
    )
    files.node_toml.write_text(tomli_w.dumps(doc), encoding="utf-8")
    files.member_toml.write_bytes((stage / "member.toml").read_bytes())


def _database_password(region: str, files: RegionFiles) -> None:
    password = secrets.token_urlsafe(DB_PASSWORD_BYTES)  # no ':' or '\\': passfile-safe
    write_secret(files.secrets / "db-password", password.encode() + b"\n")
    # libpq passfile (PGPASSFILE): host:port:database:user:password; the services'
    # database URLs carry no password, so none sits in a config file or variable.
    line = f"{host(region, 'db')}:{DB_PORT}:*:{DB_USER}:{password}\n"
    write_secret(files.secrets / "pgpass", line.encode())


def provision(deploy_dir: Path, regions: tuple[str, ...] = REGIONS) -> list[RegionFiles]:
    """Write every region's secrets and generated configs under `deploy_dir`."""
    consortium = deploy_dir / "generated" / "consortium.toml"
    if consortium.exists():
        raise DemoError(f"{consortium} exists: this deployment is provisioned already")
    made: list[RegionFiles] = []
    with tempfile.TemporaryDirectory(prefix="healthbridge-provision-") as tmp:
        for region in regions:
            files = RegionFiles(
                region,
                deploy_dir / "secrets" / region.lower(),
                deploy_dir / "generated" / region.lower(),
            )
            files.secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
            files.generated.mkdir(parents=True, exist_ok=True)
            root, writer = _issuer_keys(region, files.secrets, Path(tmp) / region / "issuer")
            _ledger_node(region, files, root, writer, Path(tmp) / region / "ledger")
            _database_password(region, files)
            made.append(files)
        members = [a for f in made for a in ("--member", str(f.member_toml))]
        run_cli("ledger", "consortium", "init", "--out", str(consortium), *members)
    return made


@click.command()
@click.option(
    "--dir",
    "deploy_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("deploy"),
    show_default=True,
    help="The deploy folder next to docker-compose.yml.",
)
def main(deploy_dir: Path) -> None:
    """Generate keys (mode 0600) and configs for `docker compose up`."""
    try:
        made = provision(deploy_dir)
    except DemoError as e:
        raise click.ClickException(str(e)) from e
    for f in made:
        click.echo(f"{f.region}: secrets in {f.secrets}, node config {f.node_toml}")
    click.echo(f"consortium (trust root): {deploy_dir / 'generated' / 'consortium.toml'}")
    secrets_dir = deploy_dir / "secrets"
    click.echo(
        "docker compose (without swarm) bind-mounts secret files with their host owner and "
        f"mode: give HealthBridge's uid {IMAGE_UID} its files and PostgreSQL's uid "
        f"{POSTGRES_UID} the database password, then `docker compose up -d`:\n"
        f"  sudo chown -R {IMAGE_UID} {secrets_dir}\n"
        f"  sudo chown {POSTGRES_UID} {secrets_dir}/*/db-password"
    )


if __name__ == "__main__":
    main()
