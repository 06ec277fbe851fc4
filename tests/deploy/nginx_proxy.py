"""Start Debian's nginx on loopback with deploy/nginx/issuer.conf.template, filled in
exactly as the nginx image's envsubst step fills it, in a throwaway prefix; and start
an issuer the way docker-compose does (`healthbridge issuer serve --workers 2`)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import tomli_w

from common.serving import free_port
from issuer.config import render_config
from issuer.testing import make_context
from tests.support.environment import missing

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "nginx" / "issuer.conf.template"
NGINX = Path("/usr/sbin/nginx")
START_TIMEOUT_S = 30.0
_VAR = re.compile(r"\$\{(HB_[A-Z_]+)\}")


def render_template(text: str, values: dict[str, str]) -> str:
    """envsubst for the HB_* variables only, leaving nginx's own $names alone."""
    return _VAR.sub(lambda m: values[m.group(1)], text)


def wait_http(url: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout_s} s")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def nginx_proxy(upstream: str) -> Iterator[str]:
    """nginx in front of `upstream` (host:port); yields the proxy's base URL."""
    if not NGINX.exists():
        missing("Debian's nginx (apt-get install nginx)")
    # Its own directory straight under the system temp dir: when started as root the
    # workers run as nobody, who cannot enter pytest's 0700 tmp_path to spool bodies.
    prefix = Path(tempfile.mkdtemp(prefix="hb-nginx-"))
    os.chmod(prefix, 0o755)
    temp_dirs = [prefix / d for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi")]
    for d in temp_dirs:
        d.mkdir()
    user = ""
    if os.geteuid() == 0:  # the workers drop to nobody: let them spool bodies
        nobody = pwd.getpwnam("nobody")
        for d in [prefix, *temp_dirs]:
            os.chown(d, nobody.pw_uid, nobody.pw_gid)
        user = "user nobody nogroup;"
    port = free_port()
    server = render_template(
        TEMPLATE.read_text(encoding="utf-8"),
        {"HB_ISSUER_SERVERS": f"server {upstream};", "HB_PROXY_LISTEN": f"127.0.0.1:{port}"},
    )
    (prefix / "issuer.conf").write_text(server, encoding="utf-8")
    (prefix / "nginx.conf").write_text(
        f"""{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/issuer.conf;
}}
""",
        encoding="utf-8",
    )
    cmd = [str(NGINX), "-p", str(prefix), "-e", str(prefix / "error.log"), "-c"]
    cmd += [str(prefix / "nginx.conf"), "-g", "daemon off;"]
    check = subprocess.run([*cmd, "-t"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/status")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)
        shutil.rmtree(prefix, ignore_errors=True)


@contextmanager
def gunicorn_issuer(tmp: Path, workers: int = 2, **overrides: object) -> Iterator[str]:
    """`healthbridge issuer serve --workers N` on a seeded SQLite issuer; yields host:port."""
    ctx = make_context(tmp, "GD", **overrides)
    config = ctx.config
    ctx.dispose()
    path = tmp / "issuer.toml"
    path.write_text(tomli_w.dumps(render_config(config)), encoding="utf-8")
    port = free_port()
    exe = Path(sys.executable).with_name("healthbridge")
    args = ["issuer", "serve", "--config", str(path), "--host", "127.0.0.1", "--port"]
    proc = subprocess.Popen(
        [str(exe), *args, str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/status")
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)
