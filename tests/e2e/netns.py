"""The browser's network: a namespace of its own, joined to this one by a veth pair.

    browser (namespace, 198.51.100.X+1) ──veth──▶ nginx (198.51.100.X) ──127.0.0.1──▶ sluice serve

So nginx sees the browser at a public-looking address (TEST-NET-2, RFC 5737): the collector must
hash that address, not nginx's 127.0.0.1, and nginx must refuse it `/etl/`. The namespace has no
route anywhere else; Chromium resolves `*.test` names to the veth address by a host-resolver rule,
and never looks anything up.

`namespace(host=N)` makes the Nth of several more (TEST-NET-3): collector hosts of their own, each
reaching this namespace (nginx, PostgreSQL) only through its veth (tests/faults/test_multi_host.py).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def _ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", *args] if netns is None else ["ip", "netns", "exec", netns, "ip", *args]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class Namespace:
    """A network namespace joined to this one by a veth pair: `host_ip` is our end, `client_ip` its."""

    name: str
    host_ip: str
    client_ip: str
    host_if: str = ""  # our end of the veth: `ip link set dev HOST_IF down` cuts the namespace off

    def run(self, *cmd: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *cmd], capture_output=True, text=True, timeout=timeout_s, check=False
        )

    def popen(self, *cmd: str, log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """`cmd` in the namespace (`ip netns exec` execs it: the child's pid is the command's own)."""
        with log.open("ab") as out:
            return subprocess.Popen(
                ["ip", "netns", "exec", self.name, *cmd], stdout=out, stderr=subprocess.STDOUT, env=env
            )


def _remove_stale_namespaces() -> None:
    """Namespaces left by runs that were killed before they could clean up (their pid is gone)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    for match in re.finditer(r"^sluice-e2e-(\d+)(?:-(\d+))?\b", listed, re.MULTILINE):
        pid = int(match.group(1))
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["ip", "link", "del", f"sl{pid}h{match.group(2) or ''}"], capture_output=True, check=False)
            subprocess.run(["ip", "netns", "del", match.group(0)], capture_output=True, check=False)


HOSTS = 4  # namespaces `namespace(host=...)` can make per process


@contextmanager
def namespace(host: int | None = None) -> Iterator[Namespace]:
    """Root (CAP_NET_ADMIN) is needed; `make test` runs as root, as CI does."""
    _remove_stale_namespaces()
    pid = os.getpid()
    if host is None:
        name, host_if, client_if = f"sluice-e2e-{pid}", f"sl{pid}h", f"sl{pid}c"
        # A /30 of TEST-NET-2 chosen by pid, so that two suites running at once do not collide.
        net, base = "198.51.100", (pid % 64) * 4
    else:
        assert 0 <= host < HOSTS, f"host={host}: at most {HOSTS} host namespaces"
        name, host_if, client_if = f"sluice-e2e-{pid}-{host}", f"sl{pid}h{host}", f"sl{pid}c{host}"
        # the pid's block of HOSTS /30s in TEST-NET-3
        net, base = "203.0.113", ((pid % (64 // HOSTS)) * HOSTS + host) * 4
    host_ip, client_ip = f"{net}.{base + 1}", f"{net}.{base + 2}"
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", client_if, "netns", name)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("addr", "add", f"{client_ip}/30", "dev", client_if, netns=name)
        _ip("link", "set", client_if, "up", netns=name)
        _ip("link", "set", "lo", "up", netns=name)
        yield Namespace(name, host_ip, client_ip, host_if)
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
