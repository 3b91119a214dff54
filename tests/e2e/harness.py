"""The pieces of the end-to-end rig: a network namespace standing in for the internet, the shipped
nginx.conf rendered for a test, a running Sluice, a static site, and Chromium.

    browser (namespace, 198.51.100.X+1) ──veth──▶ nginx (198.51.100.X) ──127.0.0.1──▶ sluice serve

Chromium runs inside a network namespace of our own, so nginx sees it at a public-looking address
(TEST-NET-2, RFC 5737): the collector must hash that address, not nginx's 127.0.0.1, and nginx must
refuse it `/etl/`. The namespace has no route anywhere else; Chromium resolves `*.test` names to
the veth address by a host-resolver rule, and never looks anything up.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "nginx.conf"


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 15.0, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"gave up after {timeout_s}s waiting for {what}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """HTTP/1.1 over one kept-alive connection (the standard library's, so the suite needs no client)."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        url = urllib.parse.urlsplit(base_url)
        self.conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout_s)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> Reply:
        self.conn.request(method, path, body=body, headers=dict(headers or {}))
        response = self.conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)

    def post_json(self, path: str, doc: Any) -> Reply:
        return self.request("POST", path, json.dumps(doc).encode(), {"Content-Type": "application/json"})

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fetch(method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None) -> Reply:
    parts = urllib.parse.urlsplit(url)
    with Client(f"{parts.scheme}://{parts.netloc}") as client:
        return client.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body, headers)


# -- the namespace ---------------------------------------------------------------------------------


def _ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", *args] if netns is None else ["ip", "netns", "exec", netns, "ip", *args]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class Namespace:
    """A network namespace joined to this one by a veth pair: `host_ip` is our end, `client_ip` its."""

    name: str
    host_ip: str
    client_ip: str

    def run(self, *cmd: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *cmd], capture_output=True, text=True, timeout=timeout_s, check=False
        )

    def popen(self, *cmd: str, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], stdout=out, stderr=subprocess.STDOUT)


def _remove_stale_namespaces() -> None:
    """Namespaces left by runs that were killed before they could clean up (their pid is gone)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    for match in re.finditer(r"^sluice-e2e-(\d+)\b", listed, re.MULTILINE):
        pid = int(match.group(1))
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["ip", "link", "del", f"sl{pid}h"], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", match.group(0)], capture_output=True, check=False)


@contextmanager
def namespace() -> Iterator[Namespace]:
    """Root (CAP_NET_ADMIN) is needed; `make test` runs as root, as CI does."""
    _remove_stale_namespaces()
    pid = os.getpid()
    name, host_if, client_if = f"sluice-e2e-{pid}", f"sl{pid}h", f"sl{pid}c"
    # A /30 of TEST-NET-2 chosen by pid, so that two suites running at once do not collide.
    base = (pid % 64) * 4
    host_ip, client_ip = f"198.51.100.{base + 1}", f"198.51.100.{base + 2}"
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", client_if, "netns", name)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("addr", "add", f"{client_ip}/30", "dev", client_if, netns=name)
        _ip("link", "set", client_if, "up", netns=name)
        _ip("link", "set", "lo", "up", netns=name)
        yield Namespace(name, host_ip, client_ip)
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


# -- processes -------------------------------------------------------------------------------------


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass(frozen=True)
class Sluice:
    host: str
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def sluice_serve(env: Mapping[str, str], directory: Path) -> Iterator[Sluice]:
    """`sluice serve` on a free loopback port, with `env` (DATABASE_URL, SLUICE_*) on top of ours."""
    port = free_port()
    log = directory / "sluice.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sluice.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, **env},
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"sluice serve exited with {proc.returncode}:\n{_log_tail(log)}")
            return port_open("127.0.0.1", port)

        wait_until(up, "sluice serve to listen", timeout_s=30)
        yield Sluice("127.0.0.1", port, log)
    finally:
        stop(proc)


# -- nginx -----------------------------------------------------------------------------------------


def render_nginx_conf(
    *, listen: list[str], upstream: str, tracker_root: Path, prefix: Path, source: Path = NGINX_CONF
) -> str:
    """The shipped nginx.conf with only its lines marked `# rendered by tests` replaced.

    Every marked line must be one this function knows and every known line must be found once,
    so an edit to the shipped file that these tests would no longer cover fails loudly here.
    """
    replacements = {
        r"pid \S+;": f"pid {prefix / 'nginx.pid'};",
        r"error_log \S+ (\w+);": rf"error_log {prefix / 'error.log'} \1;",
        r"access_log \S+;": f"access_log {prefix / 'access.log'};",
        r"server 127\.0\.0\.1:8000;": f"server {upstream};",
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
def nginx(*, addresses: list[str], upstream: str, prefix: Path) -> Iterator[Nginx]:
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
                raise RuntimeError(f"nginx exited with {proc.returncode}:\n{_log_tail(log)}")
            return port_open(addresses[0], port)

        wait_until(up, "nginx to listen")
        yield Nginx(port, prefix)
    finally:
        stop(proc, signal.SIGQUIT)  # graceful: lets workers finish what they took


# -- a static site ---------------------------------------------------------------------------------


@contextmanager
def static_site(host: str, pages: Mapping[str, str]) -> Iterator[str]:
    """Serves `pages` (path -> HTML) on `host` at a free port; every other path is the "/" page,
    as a single-page app's server does. Yields the port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            body = pages.get(path, pages["/"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield str(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- Chromium --------------------------------------------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromedriver_in(ns: Namespace, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """ChromeDriver (and so Chromium) inside the namespace, reachable from here at its address."""
    binary = shutil.which("chromedriver")
    if not binary:
        raise RuntimeError("chromedriver is not installed: run scripts/ensure-system-deps.sh")
    port = free_port()
    proc = ns.popen(binary, f"--port={port}", f"--allowed-ips={ns.host_ip}", log=directory / "chromedriver.log")
    url = f"http://{ns.client_ip}:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"chromedriver exited with {proc.returncode}")
        try:
            return fetch("GET", f"{url}/status").status == 200
        except OSError:
            return False

    wait_until(up, "chromedriver to answer")
    return proc, url
