"""Debian's nginx started on loopback for tests and benchmarks: a throwaway prefix
folder, a port chosen by the caller, stopped on exit. Used wherever nginx is put in
front of our services on one machine (the issuer's proxy, the tile cache)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NGINX = Path("/usr/sbin/nginx")


class NginxMissingError(RuntimeError):
    """Debian's nginx binary is not on this machine."""


START_TIMEOUT_S = 10.0


def render_template(template: Path, values: dict[str, str]) -> str:
    """What the official nginx image's entrypoint does with envsubst: replace only the
    named ${VARS}, leaving nginx's own $variables alone."""
    text = template.read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    return text


@contextmanager
def run_nginx(folder: Path, http_block: str, port: int) -> Iterator[str]:
    """Run nginx with `http_block` inside `http { }`; yield its base URL."""
    if not NGINX.exists():
        raise NginxMissingError("Debian's nginx is not installed: apt-get install nginx")
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("logs", "spool"):
        (folder / sub).mkdir(exist_ok=True)
    conf = folder / "nginx.conf"
    # As root, nginx's workers would drop to `nobody`, who cannot enter pytest's 0700
    # temporary folders (cache, temp files): keep them as the test's own user.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(
        f"""{user}daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {folder}/logs/access.log;
    client_body_temp_path {folder}/spool/body;
    proxy_temp_path {folder}/spool/proxy;
    fastcgi_temp_path {folder}/spool/fastcgi;
    uwsgi_temp_path {folder}/spool/uwsgi;
    scgi_temp_path {folder}/spool/scgi;
{http_block}
}}
""",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [str(NGINX), "-p", str(folder), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"nginx did not start: {err}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(folder / "spool", ignore_errors=True)
