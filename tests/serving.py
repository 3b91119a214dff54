"""`sluice serve` as a process of its own, as it runs in production: started, signalled, exited."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from e2e.harness import free_port, log_tail, port_open, wait_until

from sluice.embedded_pg import EmbeddedPostgres, find_bindir


@dataclass(frozen=True)
class Serving:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        """Sends `sig` and returns the exit code; a process still there after `timeout_s` is killed."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout_s)
            raise AssertionError(
                f"sluice serve did not exit within {timeout_s}s of {sig!r}:\n{log_tail(self.log)}"
            ) from None


def start_serve(
    env: Mapping[str, str | None],
    directory: Path,
    *,
    cwd: Path | None = None,
    port: int | None = None,
    arguments: Sequence[str] = (),
    sluice: Sequence[str] = (sys.executable, "-m", "sluice.cli"),
    timeout_s: float = 60.0,
) -> Serving:
    """`sluice serve` on loopback at `port` (default: a free one), with `env` on top of ours (None
    unsets a variable), its output added to `directory/sluice.log`; returns once it listens.
    `sluice` is the command to run (the checkout's, by default)."""
    port = port or free_port()
    log = directory / "sluice.log"
    environment = dict(os.environ)
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    command = [*sluice, "serve", "--host", "127.0.0.1", "--port", str(port), *arguments]
    with log.open("ab") as out:  # a serve started again on the same directory logs after the first
        process = subprocess.Popen(command, env=environment, cwd=cwd or directory, stdout=out, stderr=subprocess.STDOUT)
    serving = Serving(process, port, log)

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"sluice serve exited with {process.returncode}:\n{log_tail(log)}")
        return port_open("127.0.0.1", port)

    try:
        wait_until(up, "sluice serve to listen", timeout_s=timeout_s)
    except BaseException:
        serving.stop(signal.SIGKILL)
        raise
    return serving


@contextmanager
def embedded_data_dir(prefix: str = "sluice-") -> Iterator[Path]:
    """A SLUICE_DATA_DIR for the embedded server, removed afterwards with any server still running
    in it stopped first. Under /tmp, not pytest's tmp_path: as root the server runs as another
    user, who must be able to reach it."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir="/tmp") as tmp:
        Path(tmp).chmod(0o755)
        try:
            yield Path(tmp)
        finally:
            bindir = find_bindir()
            server = EmbeddedPostgres(Path(tmp) / "postgres", bindir) if bindir else None
            if server is not None and server.is_running():
                server.stop()
