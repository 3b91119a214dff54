"""All configuration, read once from the environment (`DATABASE_URL` and `SLUICE_*`)."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """A setting has a value Sluice cannot use; the message names the variable and the value."""


def _int(env: Mapping[str, str], key: str, default: int, minimum: int = 0) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{key}={raw!r} must be at least {minimum}")
    return value


def _flag(env: Mapping[str, str], key: str) -> bool:
    raw = env.get(key, "").strip().lower()
    if raw not in ("", "0", "1", "off", "on", "false", "true", "no", "yes"):
        raise ConfigError(f"{key}={raw!r} must be on or off (1/0, true/false, yes/no)")
    return raw in ("1", "on", "true", "yes")


def _list(env: Mapping[str, str], key: str, default: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(key, default).split(",") if item.strip())


def _networks(
    env: Mapping[str, str], key: str, default: str
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for item in _list(env, key, default):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"{key}: {item!r} is not an IP address or network") from None
    return tuple(networks)


@dataclass(frozen=True)
class Settings:
    # Where the data lives. Empty database_url means: run a private embedded PostgreSQL.
    database_url: str = ""
    # A streaming replica (or any read-only copy) for the reports, the dashboard and `sluice psql --read`;
    # empty: they read the primary, DATABASE_URL.
    read_database_url: str = ""
    schema: str = "sluice"
    data_dir: Path = Path(".sluice")

    # Serving.
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1

    # Ingestion.
    cors_origins: tuple[str, ...] = ("*",)
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default_factory=lambda: _networks({}, "", "127.0.0.0/8,::1/128")
    )
    max_future_skew_s: int = 60
    geoip_db: str = ""
    partitions_ahead_days: int = 7
    db_timeout_s: int = 5  # connecting, waiting for a pooled connection, the health check
    write_timeout_s: int = 5  # the collector's writer: one write to PostgreSQL, before its batch is spooled
    header_timeout_s: int = 10  # a request's headers, from connection (or request) start (sluice/read_limits.py)
    body_timeout_s: int = 10  # idle between two pieces of a request body
    max_connections: int = 256  # per worker; past it a new connection is answered 503 and closed (read_limits.py)
    # bearer tokens of server-side sources (sluice.client): only their events' end-user IP and
    # User-Agent are believed
    ingest_tokens: tuple[str, ...] = ()
    link_prefix: str = "/l"  # short links: GET {link_prefix}/{short_code}
    spool_max_mb: int = 1024  # the collector's spool under data_dir/spool, all its files together
    # refuse (unknown_site) the events of a site not registered with `sluice sites add`
    require_known_sites: bool = False

    # ETL.
    etl_schedule: str = "60"  # seconds between runs, or "off"
    admin_token: str = ""
    session_timeout_min: int = 30
    lateness_days: int = 3
    retention_days: int = 90
    daily_retention_days: int = 730
    etl_work_mem: str = "256MB"  # PostgreSQL work_mem inside ETL runs: sessionization sorts in memory
    prop_values_cap: int = 100  # distinct values per custom event property key and day (daily_custom_event_props)

    # Reports.
    read_token: str = ""  # bearer token of the reports API and the dashboard (the admin token works too)
    metrics_token: str = ""  # bearer token of GET /metrics (the admin token works too)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        schema = env.get("SLUICE_SCHEMA", "sluice")
        if not schema.isidentifier() or schema.lower() != schema:
            raise ConfigError(f"SLUICE_SCHEMA={schema!r} must be a lowercase SQL identifier")
        schedule = env.get("SLUICE_ETL_SCHEDULE", "60").strip().lower()
        if schedule != "off" and not (schedule.isdigit() and int(schedule) > 0):
            raise ConfigError(f"SLUICE_ETL_SCHEDULE={schedule!r} must be a number of seconds or 'off'")
        work_mem = env.get("SLUICE_ETL_WORK_MEM", "256MB").strip()
        if not re.fullmatch(r"\d+(kB|MB|GB)", work_mem):
            raise ConfigError(f"SLUICE_ETL_WORK_MEM={work_mem!r} must be a size like '64MB' or '1GB'")
        admin_token, read_token = env.get("SLUICE_ADMIN_TOKEN", ""), env.get("SLUICE_READ_TOKEN", "")
        if read_token and read_token == admin_token:
            raise ConfigError("SLUICE_READ_TOKEN must differ from SLUICE_ADMIN_TOKEN: it would reach the controls")
        ingest_tokens = _list(env, "SLUICE_INGEST_TOKENS", "")
        if admin_token and admin_token in ingest_tokens:
            # a host app holds its ingest token; the admin token would give it the whole log
            raise ConfigError("SLUICE_INGEST_TOKENS must not hold SLUICE_ADMIN_TOKEN: give server sources their own")
        read_database_url = env.get("SLUICE_READ_DATABASE_URL", "").strip()
        if read_database_url and not env.get("DATABASE_URL", ""):
            raise ConfigError("SLUICE_READ_DATABASE_URL needs DATABASE_URL: the embedded server has no replica")
        link_prefix = env.get("SLUICE_LINK_PREFIX", "/l").strip()
        if not re.fullmatch(r"(/[A-Za-z0-9_.~-]+)+", link_prefix):
            raise ConfigError(f"SLUICE_LINK_PREFIX={link_prefix!r} must be a path like '/l' or '/go' (no trailing '/')")
        return cls(
            database_url=env.get("DATABASE_URL", ""),
            read_database_url=read_database_url,
            schema=schema,
            data_dir=Path(env.get("SLUICE_DATA_DIR", ".sluice")),
            host=env.get("SLUICE_HOST", "127.0.0.1"),
            port=_int(env, "SLUICE_PORT", 8000, minimum=1),
            workers=_int(env, "SLUICE_WORKERS", 1, minimum=1),
            cors_origins=_list(env, "SLUICE_CORS_ORIGINS", "*"),
            trusted_proxies=_networks(env, "SLUICE_TRUSTED_PROXIES", "127.0.0.0/8,::1/128"),
            max_future_skew_s=_int(env, "SLUICE_MAX_FUTURE_SKEW", 60),
            geoip_db=env.get("SLUICE_GEOIP_DB", ""),
            partitions_ahead_days=_int(env, "SLUICE_PARTITIONS_AHEAD_DAYS", 7, minimum=1),
            db_timeout_s=_int(env, "SLUICE_DB_TIMEOUT", 5, minimum=1),
            write_timeout_s=_int(env, "SLUICE_WRITE_TIMEOUT", 5, minimum=1),
            header_timeout_s=_int(env, "SLUICE_HEADER_TIMEOUT", 10, minimum=1),
            body_timeout_s=_int(env, "SLUICE_BODY_TIMEOUT", 10, minimum=1),
            max_connections=_int(env, "SLUICE_MAX_CONNECTIONS", 256, minimum=1),
            spool_max_mb=_int(env, "SLUICE_SPOOL_MAX_MB", 1024, minimum=1),
            etl_schedule=schedule,
            ingest_tokens=ingest_tokens,
            require_known_sites=_flag(env, "SLUICE_REQUIRE_KNOWN_SITES"),
            link_prefix=link_prefix,
            admin_token=admin_token,
            session_timeout_min=_int(env, "SLUICE_SESSION_TIMEOUT_MINUTES", 30, minimum=1),
            lateness_days=_int(env, "SLUICE_LATENESS_DAYS", 3, minimum=0),
            retention_days=_int(env, "SLUICE_RETENTION_DAYS", 90, minimum=1),
            daily_retention_days=_int(env, "SLUICE_DAILY_RETENTION_DAYS", 730, minimum=1),
            etl_work_mem=work_mem,
            prop_values_cap=_int(env, "SLUICE_PROP_VALUES_CAP", 100, minimum=1),
            read_token=read_token,
            metrics_token=env.get("SLUICE_METRICS_TOKEN", ""),
        )
