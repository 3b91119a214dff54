"""`sluice psql [psql arguments]`: psql on Sluice's database, with `search_path` set to its schema.

The database is DATABASE_URL's (with `--read`, SLUICE_READ_DATABASE_URL's when it is set), or the
embedded server's, started for the session if it is down (and stopped after it, unless another
sluice process uses it). psql runs as a child, not in this
process's place, so that the embedded server's lease outlives it; Ctrl-C belongs to psql (it
cancels the query), as in a shell.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from sluice import embedded_pg
from sluice.db import conninfo
from sluice.settings import Settings
from sluice.stopping import Stopped


class PsqlNotFound(RuntimeError):
    """No psql binary on this machine."""


def find_psql() -> str:
    # The server's own bindir first: its psql matches the embedded server's version.
    bindir = embedded_pg.find_bindir()
    for candidate in (bindir / "psql" if bindir else None, shutil.which("psql")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise PsqlNotFound("psql was not found: install it (apt-get install postgresql-client)")


def command(settings: Settings, arguments: Sequence[str], *, read: bool = False) -> tuple[list[str], dict[str, str]]:
    """psql's command line and environment: a password goes in PGPASSWORD, out of `ps`'s sight.
    `read`: on the read replica (SLUICE_READ_DATABASE_URL) when there is one."""
    params = conninfo_to_dict(conninfo(settings, "sluice-psql", read=read))
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return [find_psql(), f"--dbname={make_conninfo('', **params)}", *arguments], env


def psql(settings: Settings, arguments: Sequence[str], *, read: bool = False) -> int:
    find_psql()  # before the embedded server is started for nothing
    with embedded_pg.database_for(settings) as settings:
        argv, env = command(settings, arguments, read=read)
        child = subprocess.Popen(argv, env=env)
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return child.wait()
        except Stopped:
            child.terminate()
            child.wait()
            raise
        finally:
            signal.signal(signal.SIGINT, previous)
