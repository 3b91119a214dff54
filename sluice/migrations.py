"""Applies `sql/migrations/NNNN_name.sql` in order, each once, recorded in `schema_migrations`.

Safe to run twice and concurrently: a transaction-level advisory lock serialises migrators, and each
file is applied in the same transaction that records it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import psycopg
from psycopg import sql

from sluice.settings import Settings

# Package data (sql/migrations in the repository): found the same way in a wheel and a checkout.
MIGRATIONS_DIR = files("sluice.sql") / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Arbitrary constant shared by every Sluice migrator: "sluice-migrate" folded to 63 bits.
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"sluice-migrate").digest()[:8], "big") >> 1


@dataclass(frozen=True)
class Migration:
    version: str
    path: Traversable

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".sql")


class NoMigrations(RuntimeError):
    """The package carries no migration files: a broken install, never "up to date"."""


class MigrationFailed(RuntimeError):
    """A migration file failed; its transaction rolled back, so nothing of it is applied."""


def discover(directory: Traversable = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    found = directory.iterdir() if directory.is_dir() else ()
    for path in sorted((p for p in found if p.name.endswith(".sql")), key=lambda p: p.name):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name!r} does not match NNNN_name.sql")
        migrations.append(Migration(match.group(1), path))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migration files share a version number: {versions}")
    if not migrations:
        raise NoMigrations(f"no migration files in {directory}: this installation of Sluice is incomplete")
    return migrations


def apply(conn: psycopg.Connection, schema: str, directory: Traversable = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations on `conn` (not in a transaction); returns the names applied."""
    applied: list[str] = []
    schema_id = sql.Identifier(schema)
    for migration in discover(directory):
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(sql.SQL("create schema if not exists {}").format(schema_id))
            conn.execute(sql.SQL("set local search_path to {}, public").format(schema_id))
            conn.execute(
                """
                create table if not exists schema_migrations (
                    version    text primary key,
                    name       text not null,
                    applied_at timestamptz not null default now()
                )
                """
            )
            done = conn.execute("select 1 from schema_migrations where version = %s", (migration.version,))
            if done.fetchone():
                continue
            # a trusted file from the package's own sql/migrations, run as written
            try:
                conn.execute(migration.path.read_text(encoding="utf-8").encode())
            except psycopg.Error as exc:
                message = f"migration {migration.name} failed, nothing of it was applied: {str(exc).strip()}"
                raise MigrationFailed(message) from exc
            conn.execute(
                "insert into schema_migrations (version, name) values (%s, %s)",
                (migration.version, migration.name),
            )
            applied.append(migration.name)
    return applied


def migrate(settings: Settings) -> list[str]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        return apply(conn, settings.schema)
