-- Sites and their write keys (README "Sites and write keys"): `sluice sites` and /api/v1/sites
-- manage them; the collector reads them to name the site of a Segment, RudderStack or PostHog
-- request by its write key, to open CORS to a site's own origins, and (SLUICE_REQUIRE_KNOWN_SITES)
-- to refuse events for a site that is not here.
--
-- A write key is stored as its SHA-256 only and shown once, when it is made. A plain hash, not a
-- slow password hash: the keys are 256 random bits (secrets.token_urlsafe(32)), which no
-- dictionary or brute force reaches, and the collector hashes the key of every request it checks.

create table sites (
    site_id         text        primary key,
    name            text        not null,
    allowed_origins text[]      not null default '{}',
    timezone        text        not null default 'UTC',
    created_at      timestamptz not null default now()
);

comment on table sites is 'One row per site registered with `sluice sites add` or POST /api/v1/sites; events may name other sites unless SLUICE_REQUIRE_KNOWN_SITES is on.';
comment on column sites.site_id is 'The site id events carry (siteId; a Plausible domain; an Umami website id).';
comment on column sites.name is 'A human name for the site (the site id unless one was given).';
comment on column sites.allowed_origins is 'Browser origins (https://example.com) allowed to send this site''s events cross-origin, beside SLUICE_CORS_ORIGINS.';
comment on column sites.timezone is 'The site''s IANA time zone (default UTC), kept for reports; the ETL''s days are UTC days.';
comment on column sites.created_at is 'When the site was added.';

-- Internal: a key's hash names its site (migration 0011's rule: revoked, and in INTERNAL_TABLES).
create table site_write_keys (
    key_hash   bytea       primary key,
    site_id    text        not null references sites (site_id) on delete cascade,
    created_at timestamptz not null default now()
);

create index site_write_keys_site_idx on site_write_keys (site_id);

revoke all on site_write_keys from sluice_analyst;
