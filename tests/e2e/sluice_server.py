"""`sluice serve` as a process of its own, as it runs in production."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .harness import REPO, free_port, log_tail, port_open, stop, wait_until


@dataclass(frozen=True)
class Sluice:
    host: str
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def sluice_serve(env: Mapping[str, str], directory: Path, port: int | None = None) -> Iterator[Sluice]:
    """`sluice serve` on loopback at `port` (default: a free one), with `env` (DATABASE_URL,
    SLUICE_*) on top of ours."""
    port = port or free_port()
    log = directory / "sluice.log"
    with log.open("ab") as out:  # a collector started again on the same directory logs after the first
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
                raise RuntimeError(f"sluice serve exited with {proc.returncode}:\n{log_tail(log)}")
            return port_open("127.0.0.1", port)

        wait_until(up, "sluice serve to listen", timeout_s=30)
        yield Sluice("127.0.0.1", port, log)
    finally:
        stop(proc)
