"""docker-compose.yml checked without a Docker engine.

The file must satisfy the Compose specification's JSON schema (the copy vendored by
check-jsonschema); every HealthBridge service's `command` must be a real `healthbridge`
command whose options are declared and whose required options are present (parsed by
click exactly as the container would, with container paths mapped to the mounted
files); every secret, config, volume and bind mount must exist once the deployment is
provisioned (`python -m healthbridge.deploy`); every health check must hit a route the
app really serves with 200; the Dockerfile's COPY sources must exist.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Iterator
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import click
import jsonschema
import pytest
import yaml

from healthbridge.cli import main
from healthbridge.demo_world import DemoError
from healthbridge.deploy import provision

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
GENERATED_PREFIXES = ("deploy/secrets/", "deploy/generated/")
SECRETS_DIR = PurePosixPath("/run/secrets")
HEALTH_URL = re.compile(r"^http://([a-z0-9.-]+):(\d+)(/\S*)$")


NGINX_IMAGE = "nginx:1.27"  # the slow-client proxies (deploy/nginx/)


def load_compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def our_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services running the repository's image (entrypoint `healthbridge`)."""
    return {n: s for n, s in doc["services"].items() if s.get("build") == "."}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's compose file and deploy/, provisioned."""
    root = tmp_path_factory.mktemp("deployment")
    ignore = shutil.ignore_patterns("secrets", "generated")
    shutil.copytree(ROOT / "deploy", root / "deploy", ignore=ignore)
    shutil.copy(COMPOSE, root / "docker-compose.yml")
    provision(root / "deploy")
    return root


# -- the specification ----------------------------------------------------------------------


def compose_validator() -> jsonschema.protocols.Validator:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_compose_file_satisfies_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = compose_validator()
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []
    # The schema does bite: a misspelt key is refused.
    broken = copy.deepcopy(compose)
    broken["services"]["gd-ledger"]["healthchek"] = broken["services"]["gd-ledger"]["healthcheck"]
    assert list(validator.iter_errors(broken))


MONITORING_IMAGES = {"prometheus": "prom/prometheus:", "grafana": "grafana/grafana:"}


def test_every_service_uses_the_repository_image_or_postgres(compose: dict[str, Any]) -> None:
    for name, s in compose["services"].items():
        if name in MONITORING_IMAGES:
            # Pinned third-party images, only in the optional "monitoring" profile.
            assert s["image"].startswith(MONITORING_IMAGES[name]), name
            assert s["profiles"] == ["monitoring"], name
            assert all(p.startswith("127.0.0.1:") for p in s["ports"]), name
            continue
        assert s.get("build") == "." or s.get("image") in ("postgres:15", "redis:7", NGINX_IMAGE), (
            name
        )
    dbs = [n for n, s in compose["services"].items() if s.get("image") == "postgres:15"]
    assert sorted(dbs) == ["gd-db", "mo-db"]
    for name in dbs:
        s = compose["services"][name]
        assert "pg_isready" in " ".join(s["healthcheck"]["test"])
        assert any(v.split(":")[0].endswith("pgdata") for v in s["volumes"])
        assert s["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    for name, s in our_services(compose).items():
        if s.get("restart") != "no":
            assert "healthcheck" in s, f"{name} has no health check"


# -- commands --------------------------------------------------------------------------------


def container_paths(service: dict[str, Any], root: Path, scratch: Path) -> dict[str, Path]:
    """Where each container path of a service comes from on the host (configs, secrets,
    bind mounts) or a scratch folder (named volumes)."""
    doc = yaml.safe_load((root / "docker-compose.yml").read_text(encoding="utf-8"))
    out: dict[str, Path] = {}
    for kind in ("configs", "secrets"):
        for item in service.get(kind, []):
            source = item if isinstance(item, str) else item["source"]
            target = source if isinstance(item, str) else item.get("target", source)
            if not target.startswith("/"):
                target = str(SECRETS_DIR / target)
            out[target] = root / doc[kind][source]["file"]
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out[target] = root / source
        else:
            folder = scratch / source
            folder.mkdir(parents=True, exist_ok=True)
            out[target] = folder
    return out


def host_arg(arg: str, paths: dict[str, Path]) -> str:
    for target in sorted(paths, key=len, reverse=True):
        if arg == target or arg.startswith(target + "/"):
            return str(paths[target]) + arg[len(target) :]
    return arg


def declared(cmd: click.Command) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}


def resolve(args: list[str]) -> tuple[list[str], click.Command, click.Context]:
    """Parse `healthbridge <args>` level by level, as click would before invoking."""
    cmd: click.Command = main
    name, parent, path = "healthbridge", None, []
    while True:
        ctx = cmd.make_context(name, list(args), parent=parent)
        if not isinstance(cmd, click.Group):
            mine = args
        else:
            _, rest, _ = cmd.make_parser(ctx).parse_args(list(args))
            mine = args[: len(args) - len(rest)]
        for token in mine:
            if token.startswith("--"):
                assert token.split("=")[0] in declared(cmd), f"{path}: {token} is not declared"
        if not isinstance(cmd, click.Group):
            return path, cmd, ctx
        sub_name, sub, args = cmd.resolve_command(ctx, rest)
        assert sub_name is not None and sub is not None
        parent, cmd, name = ctx, sub, sub_name
        path.append(sub_name)


def test_every_command_is_a_real_healthbridge_command(
    compose: dict[str, Any], deployment: Path, tmp_path: Path
) -> None:
    seen = set()
    for name, service in our_services(compose).items():
        command = service["command"]
        assert isinstance(command, list) and all(isinstance(a, str) for a in command), name
        paths = container_paths(service, deployment, tmp_path / name)
        try:
            path, cmd, ctx = resolve([host_arg(a, paths) for a in command])
        except click.ClickException as e:
            pytest.fail(f"{name}: `healthbridge {' '.join(command)}` does not parse: {e}")
        for p in cmd.params:
            if p.required:
                assert ctx.params.get(p.name) is not None, f"{name}: {p.name} missing"
        seen.add(" ".join(path))
    assert {"ledger serve", "issuer serve", "issuer anchor-worker", "issuer init"} <= seen
    assert {"wallet serve", "verifier init", "verifier scan"} <= seen


def test_an_undeclared_option_is_caught() -> None:
    with pytest.raises(click.NoSuchOption):
        resolve(["ledger", "serve", "--config", "node.toml", "--workers", "4"])
    with pytest.raises(click.MissingParameter):
        resolve(["ledger", "serve", "--port", "8480"])


# -- files -----------------------------------------------------------------------------------


def test_referenced_secrets_configs_and_volumes_exist(
    compose: dict[str, Any], deployment: Path
) -> None:
    for kind in ("configs", "secrets"):
        for top, entry in compose[kind].items():
            rel = entry["file"].removeprefix("./")
            assert (deployment / rel).is_file(), f"{kind}.{top}: {rel} missing after provisioning"
            if not rel.startswith(GENERATED_PREFIXES):
                assert (ROOT / rel).is_file(), f"{kind}.{top}: {rel} is not in the repository"
            if kind == "secrets":
                mode = (deployment / rel).stat().st_mode & 0o777
                assert mode == 0o600, f"{rel} has mode {mode:o}"
    for name, s in compose["services"].items():
        for kind in ("configs", "secrets"):
            for item in s.get(kind, []):
                source = item if isinstance(item, str) else item["source"]
                assert source in compose[kind], f"{name}: undeclared {kind} {source}"
                if isinstance(item, dict) and "mode" in item:
                    assert item["mode"] & 0o077 == 0, f"{name}: {source} readable by others"
        for volume in s.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: bind mount {source} missing"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"


def test_provisioned_configs_agree_with_each_other(
    compose: dict[str, Any], deployment: Path
) -> None:
    from issuer.config import load_config as load_issuer
    from issuer.keystore import KeyStore
    from ledger.log.consortium import load_consortium
    from ledger.log.entries import root_public_key_bytes
    from ledger.node.config import load_config as load_node

    consortium = load_consortium(deployment / "deploy/generated/consortium.toml")
    services = set(compose["services"])
    for region in ("GD", "MO"):
        r = region.lower()
        node = load_node(deployment / f"deploy/generated/{r}/node.toml")
        member = consortium.member(region)
        assert member.log_origin == node.origin
        assert member.root_public_key_raw == node.root_public_key
        assert re.sub(r"^http://([^:]+):.*$", r"\1", member.node_url) in services
        assert node.database_url.split("@")[1].split(":")[0] in services  # no password
        issuer = load_issuer(deployment / f"deploy/{r}/issuer.toml", env={})
        assert issuer.region == region and issuer.ledger_url == member.node_url
        keys = KeyStore(issuer.replace(key_dir=deployment / f"deploy/secrets/{r}"))
        assert root_public_key_bytes(keys.root_key()) == node.root_public_key
        writer = root_public_key_bytes(keys.writer_key())
        assert writer in node.writer_public_keys
        pgpass = (deployment / f"deploy/secrets/{r}/pgpass").read_text().strip().split(":")
        assert pgpass[0] == f"{r}-db" and pgpass[3] == "healthbridge"


def test_provisioning_never_overwrites_a_deployment(deployment: Path) -> None:
    before = (deployment / "deploy/secrets/gd/root.pem").read_bytes()
    with pytest.raises(DemoError, match="provisioned already"):
        provision(deployment / "deploy")
    assert (deployment / "deploy/secrets/gd/root.pem").read_bytes() == before


def test_dockerfile_copy_sources_exist() -> None:
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    copies = [ln.split()[1:] for ln in lines if ln.startswith("COPY ")]
    assert copies, "expected COPY lines in the Dockerfile"
    for args in copies:
        sources = [a for a in args[:-1] if not a.startswith("--")]
        for src in sources:
            assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"


# -- health checks ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One real app per kind of served command, on SQLite, workers not started."""
    from healthbridge.demo_world import run_cli
    from issuer.app import create_app as issuer_app
    from issuer.config import IssuerConfig
    from ledger.node.app import EXTENSION_KEY
    from ledger.node.app import create_app as node_app
    from ledger.node.config import load_config as load_node
    from mobile_stub.web import create_app as wallet_app
    from verifier.kiosk import create_app as kiosk_app

    tmp = tmp_path_factory.mktemp("apps")
    run_cli(
        "ledger", "init", "--region", "GD", "--origin", "gd.test/log",
        "--dir", str(tmp / "node"), "--generate-root-key",
    )  # fmt: skip
    from common.observability import ops_app
    from issuer.metrics import CHECKS_KEY, METRICS_KEY
    from ledger.metrics import METRICS_KEY as NODE_METRICS
    from verifier.kiosk import KioskState
    from verifier.metrics import StationMetrics

    node = node_app(load_node(tmp / "node/node.toml"), start=True)  # ready: sequencer runs
    run_cli("issuer", "init", "--region", "GD", "--data-dir", str(tmp / "issuer"))
    issuer = issuer_app(IssuerConfig(region="GD", data_dir=tmp / "issuer"), start_workers=False)
    node_metrics = node.extensions[NODE_METRICS]
    issuer_checks = issuer.extensions[CHECKS_KEY]
    fresh = {"GD": 5, "MO": 5}  # a station whose views were just synced
    station = StationMetrics.create(lambda: fresh, 600)
    kiosk = kiosk_app({"KIOSK_STATE": KioskState(sync_ages=lambda: fresh)})
    built = {
        ("ledger", "serve"): node,
        ("issuer", "serve"): issuer,
        ("wallet", "serve"): wallet_app({"WALLET_DIR": tmp / "wallet"}),
        ("verifier", "scan"): kiosk,
        # The separate metrics listeners (--metrics-port) of each long-running service.
        ("ledger", "serve", "metrics"): ops_app(node_metrics.registry, lambda: node_metrics.checks),
        ("issuer", "serve", "metrics"): ops_app(
            issuer.extensions[METRICS_KEY], lambda: issuer_checks
        ),
        ("issuer", "anchor-worker", "metrics"): ops_app(
            issuer.extensions[METRICS_KEY], lambda: issuer_checks
        ),
        ("verifier", "scan", "metrics"): ops_app(station.registry, lambda: station.checks),
    }
    try:
        yield built
    finally:
        node.extensions[EXTENSION_KEY].sequencer.stop()
        node.extensions[EXTENSION_KEY].store.dispose()
        issuer.extensions["issuer"].dispose()


def served_port(
    service: dict[str, Any], flags: tuple[str, ...] = ("--port", "--kiosk-port")
) -> int | None:
    command = service["command"]
    for flag in flags:
        if flag in command:
            return int(command[command.index(flag) + 1])
    return None


def metrics_port(service: dict[str, Any]) -> int | None:
    return served_port(service, ("--metrics-port",))


def test_health_checks_hit_routes_the_apps_serve(
    compose: dict[str, Any], apps: dict[tuple[str, str], Any]
) -> None:
    ours = our_services(compose)
    checked = 0
    for name, service in ours.items():
        if "healthcheck" not in service:
            continue
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "curl", "-fsS"], f"{name}: {test}"
        m = HEALTH_URL.match(test[3])
        assert m is not None, f"{name}: {test[3]}"
        target_host, port, path = m.group(1), int(m.group(2)), m.group(3)
        target = service if target_host == "127.0.0.1" else ours[target_host]
        assert port in (served_port(target), metrics_port(target)), f"{name}: checks port {port}"
        path_kind = tuple(a for a in target["command"] if not a.startswith("-"))
        if port == metrics_port(target):
            path_kind += ("metrics",)
        kind = max((k for k in apps if set(k) <= set(path_kind)), key=len)
        resp = apps[kind].test_client().get(path, headers={"Host": "127.0.0.1"})
        assert resp.status_code == 200, f"{name}: GET {path} -> {resp.status_code} {resp.data!r}"
        if metrics_port(target) is not None:  # the long-running services use the probes
            assert path in ("/readyz", "/healthz"), f"{name}: expected a probe, found {path}"
        checked += 1
    assert checked >= 8


def test_station_lanes_share_one_replay_memory(compose: dict[str, Any]) -> None:
    """The station profile brings its Redis, and the station is initialised to use it."""
    services = compose["services"]
    redis = services["station-redis"]
    assert redis["profiles"] == ["station"] and "redis-cli" in " ".join(
        redis["healthcheck"]["test"]
    )
    init = services["station-init"]["command"]
    assert init[init.index("--replay") + 1] == "redis://station-redis:6379/0"
    assert services["station"]["depends_on"]["station-redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("region", ["gd", "mo"])
def test_issuers_run_as_replicas_published_only_through_the_buffering_proxy(
    compose: dict[str, Any], region: str
) -> None:
    """Slow clients hold gunicorn's workers: each region's issuer replicas are reached
    only through its nginx (deploy/nginx/issuer.conf.template, tests/deploy/), which
    balances over the replicas and trusts one hop; anchoring workers run twice."""
    services = compose["services"]
    issuer, proxy, anchor = (services[f"{region}-{n}"] for n in ("issuer", "proxy", "anchor"))
    assert issuer["deploy"]["replicas"] >= 2
    assert anchor["deploy"]["replicas"] >= 2  # outbox rows claimed with SKIP LOCKED
    assert "ports" not in issuer  # replicas publish nothing; the proxy does
    assert proxy["image"] == NGINX_IMAGE and proxy["ports"]
    assert f"server {region}-issuer:8080" in proxy["environment"]["HB_ISSUER_SERVERS"]
    assert proxy["depends_on"] == {f"{region}-issuer": {"condition": "service_healthy"}}
    template = "./deploy/nginx/issuer.conf.template"
    assert any(v.startswith(template + ":/etc/nginx/templates/") for v in proxy["volumes"])
    assert (ROOT / template).is_file()
    config = (ROOT / "deploy" / region / "issuer.toml").read_text(encoding="utf-8")
    assert "trusted_proxies = 1" in config
