"""Every analyst table's keys start with `site_id`, so that the tables can be distributed by site
(README, "Scaling": Citus), unless README names the table and the reason. A new table with another
key fails here until it is given one that starts with `site_id`, or its reason there."""

from __future__ import annotations

from pathlib import Path

import psycopg

from sluice.analysts import analyst_tables
from sluice.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"

# Keyed otherwise, each for the reason README's "Scaling" gives.
REFERENCE_TABLES = {"sites", "user_agents", "links"}  # copied to every node
COORDINATOR_TABLES = {"etl_runs"}
KEYED_BY_EVENT_ID = {"stg_events", "clicks"}  # (site_id, event_id) under Citus
UNKEYED = {"events", "visitor_users"}  # the partitioned raw log (distributed by site_id), a view


def unique_keys(conn: psycopg.Connection, schema: str) -> dict[str, list[list[str]]]:
    """Every unique index's columns (primary keys included), by table."""
    found = conn.execute(
        """select c.relname, array_agg(a.attname::text order by k.position)
           from pg_index as i
           inner join pg_class as c on c.oid = i.indrelid
           inner join pg_namespace as n on n.oid = c.relnamespace
           cross join lateral unnest(i.indkey) with ordinality as k (attnum, position)
           inner join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum
           where n.nspname = %s and i.indisunique and not c.relispartition
           group by c.relname, i.indexrelid""",
        (schema,),
    ).fetchall()
    keys: dict[str, list[list[str]]] = {}
    for table, columns in found:
        keys.setdefault(table, []).append(list(columns))
    return keys


def test_every_analyst_key_starts_with_site_id_or_readme_says_why(db: psycopg.Connection, settings: Settings) -> None:
    keys = unique_keys(db, settings.schema)
    tables = {table.name for table in analyst_tables(db, settings.schema)}
    exceptions = REFERENCE_TABLES | COORDINATOR_TABLES | KEYED_BY_EVENT_ID
    otherwise = sorted(
        table for table in tables - exceptions if any(key[0] != "site_id" for key in keys.get(table, []))
    )
    assert otherwise == []
    assert sorted(table for table in tables - exceptions if table not in keys) == sorted(UNKEYED)
    assert (exceptions | UNKEYED) <= tables  # none of the exceptions is stale
    scaling = README.read_text().split("## Scaling", 1)[1].split("\n## ", 1)[0]
    assert all(f"`{table}`" in scaling for table in exceptions | UNKEYED)
