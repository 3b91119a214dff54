"""`sluice serve` as a process of its own, as it runs in production."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from serving import start_serve

from .harness import REPO


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
    serving = start_serve(env, directory, cwd=REPO, port=port, timeout_s=30)
    try:
        yield Sluice("127.0.0.1", serving.port, serving.log)
    finally:
        serving.stop(timeout_s=10)
