"""The shipped nginx.conf, rendered for a test (only its marked lines change) and run in the foreground."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .harness import REPO, free_port, log_tail, port_open, stop, wait_until

NGINX_CONF = REPO / "nginx.conf"


def render_nginx_conf(
    *, listen: list[str], upstream: str | list[str], tracker_root: Path, prefix: Path, source: Path = NGINX_CONF
) -> str:
    """The shipped nginx.conf with only its lines marked `# rendered by tests` replaced; several
    `upstream` addresses make the upstream's one `server` line several (README, "Scaling").

    Every marked line must be one this function knows and every known line must be found once,
    so an edit to the shipped file that these tests would no longer cover fails loudly here.
    """
    servers = [upstream] if isinstance(upstream, str) else upstream
    replacements = {
        r"pid \S+;": f"pid {prefix / 'nginx.pid'};",
        r"error_log \S+ (\w+);": rf"error_log {prefix / 'error.log'} \1;",
        r"access_log \S+;": f"access_log {prefix / 'access.log'};",
        r"server 127\.0\.0\.1:8000;": " ".join(f"server {address};" for address in servers),
        r"listen 80;": " ".join(f"listen {address};" for address in listen),
        r"listen \[::\]:80;": "",
        r"root /srv/sluice/tracker;": f"root {tracker_root};",
    }
    marked = re.compile(r"^(\s*)(.*?)\s*# rendered by tests\b.*$")
    out, seen = [], set()
    for number, line in enumerate(source.read_text().splitlines(), start=1):
        match = marked.match(line)
        if not match:
            out.append(line)
            continue
        indent, directive = match.groups()
        for pattern, replacement in replacements.items():
            if re.fullmatch(pattern, directive):
                if pattern in seen:
                    raise ValueError(f"{source.name}:{number}: {directive!r} is rendered twice")
                seen.add(pattern)
                out.append(indent + re.sub(pattern, replacement, directive))
                break
        else:
            raise ValueError(f"{source.name}:{number}: marked line {directive!r} is not one the tests render")
    missing = set(replacements) - seen
    if missing:
        raise ValueError(f"{source.name}: no marked line matches {sorted(missing)}")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Nginx:
    port: int
    prefix: Path

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"

    def error_log(self) -> str:
        return (self.prefix / "error.log").read_text(errors="replace")


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        raise RuntimeError("nginx is not installed: run scripts/ensure-system-deps.sh")
    return found


@contextmanager
def nginx(*, addresses: list[str], upstream: str | list[str], prefix: Path) -> Iterator[Nginx]:
    """nginx in the foreground on `addresses` (one port for all), its files under `prefix`."""
    port = free_port()
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        render_nginx_conf(
            listen=[f"{a}:{port}" for a in addresses], upstream=upstream, tracker_root=REPO / "tracker", prefix=prefix
        )
    )
    binary = nginx_binary()
    check = subprocess.run(
        [binary, "-t", "-q", "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t refused the rendered nginx.conf:\n{check.stderr}")
    # Started as root, nginx would run its workers as nobody, who may not read a checkout under a
    # private home directory; the shipped file leaves `user` to the distribution's default.
    main = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
    log = prefix / "stderr.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(conf), "-g", main], stdout=out, stderr=subprocess.STDOUT
        )
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {proc.returncode}:\n{log_tail(log)}")
            return port_open(addresses[0], port)

        wait_until(up, "nginx to listen")
        yield Nginx(port, prefix)
    finally:
        stop(proc, signal.SIGQUIT)  # graceful: lets workers finish what they took
