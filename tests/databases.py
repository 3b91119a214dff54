"""Databases beside the test's own: empty ones, for what must start from nothing (`sluice migrate`),
and whole private clusters, for what must stop a server or replicate one."""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import count
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from sluice.embedded_pg import EmbeddedPostgres, find_bindir

_numbers = count()


@contextmanager
def empty_database(server: psycopg.Connection) -> Iterator[str]:
    """A new, empty database on `server`'s PostgreSQL (dropped afterwards); yields its URL."""
    info = server.info
    name = f"sluice_empty_{os.getpid()}_{next(_numbers)}"
    admin = make_conninfo(host=info.host, port=info.port, user=info.user, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(host=info.host, port=info.port, user=info.user, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def table_names(url: str, schema: str) -> set[str]:
    """The tables of `schema`, partitions left out (their names carry the day they were made)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            select c.relname
            from pg_class as c
            join pg_namespace as n on n.oid = c.relnamespace
            where n.nspname = %s and c.relkind in ('r', 'p') and not c.relispartition
            """,
            (schema,),
        ).fetchall()
    return {name for (name,) in rows}


def free_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_cluster(listen: Sequence[str] = (), prefix: str = "sluice-private-") -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL cluster of the test's own (initdb into a folder under /tmp, as sluice/embedded_pg.py
    makes its own), with database `sluice`; stopped and removed afterwards. Only the test stops it:
    the machine's shared server is never touched. It listens on its Unix socket and, given `listen`,
    on those addresses too (trusting 0.0.0.0/0: a test's network namespaces reach it there), at a
    port free on loopback (`.port`)."""
    bindir = find_bindir()
    assert bindir is not None, "a private cluster needs PostgreSQL's server binaries"
    with tempfile.TemporaryDirectory(prefix=prefix, dir="/tmp") as tmp:
        Path(tmp).chmod(0o755)  # as root the server runs as `postgres`, who must reach its folder
        server = EmbeddedPostgres(Path(tmp) / "postgres", bindir)
        server.port = free_tcp_port()  # also names the socket file
        server.start()
        try:
            if listen:
                with psycopg.connect(server.url.replace("/sluice?", "/postgres?"), autocommit=True) as conn:
                    conn.execute(sql.SQL("alter system set listen_addresses = {}").format(", ".join(listen)))
                with (server.data_dir / "pg_hba.conf").open("a") as hba:
                    hba.write("host all all 0.0.0.0/0 trust\n")
                server.stop()
                server.start()
            server.ensure_database()
            yield server
        finally:
            server.stop()


@contextmanager
def streaming_replica(primary: EmbeddedPostgres) -> Iterator[EmbeddedPostgres]:
    """A streaming replica of `primary` (pg_basebackup -R over its Unix socket, the replication entry
    initdb's trust configuration allows), started at a port of its own; stopped and removed after."""
    with tempfile.TemporaryDirectory(prefix="sluice-replica-", dir="/tmp") as tmp:
        Path(tmp).chmod(0o755)
        replica = EmbeddedPostgres(Path(tmp) / "postgres", primary.bindir)
        replica.port = free_tcp_port()
        command = [str(primary.bindir / "pg_basebackup"), "-D", str(replica.data_dir), "-R", "-X", "stream"]
        command += ["-h", str(primary.data_dir), "-p", str(primary.port), "-U", "postgres", "--checkpoint=fast"]
        replica.data_dir.mkdir(mode=0o700)
        if os.geteuid() == 0:  # as the server runs: the copy must be its user's
            owner = pwd.getpwnam("postgres")
            os.chown(replica.data_dir, owner.pw_uid, owner.pw_gid)
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"pg_basebackup failed: {done.stderr}"
        with (replica.data_dir / "postgresql.auto.conf").open("a") as conf:
            # the copy's settings are the primary's: its own socket folder and port, no TCP
            conf.write(
                f"listen_addresses = ''\nunix_socket_directories = '{replica.data_dir}'\nport = {replica.port}\n"
            )
        replica.start()
        try:
            yield replica
        finally:
            replica.stop()


def wait_for_replay(primary: EmbeddedPostgres, replica: EmbeddedPostgres, timeout_s: float = 30) -> float:
    """Seconds until the replica has replayed all the WAL the primary has written so far."""
    started = time.monotonic()
    with psycopg.connect(primary.url, autocommit=True) as conn:
        row = conn.execute("select pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    with psycopg.connect(replica.url, autocommit=True) as conn:
        while True:
            done = conn.execute("select pg_last_wal_replay_lsn() >= %s::pg_lsn", (row[0],)).fetchone()
            if done and done[0]:
                return time.monotonic() - started
            assert time.monotonic() - started < timeout_s, f"the replica has not replayed {row[0]} in {timeout_s} s"
            time.sleep(0.05)
