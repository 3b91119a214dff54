-- The user-agent dimension: one row per distinct User-Agent string seen, parsed once by
-- ua-parser (etl/enrich.py). Keyed by the md5 of the string so long strings index cheaply.

create table user_agents (
    ua_hash         uuid    primary key,  -- md5(user_agent)::uuid
    user_agent      text    not null,
    browser         text    not null,     -- 'Chrome', 'Firefox', ... or 'Other'
    browser_version text,                 -- major version, e.g. '120'
    os              text    not null,     -- 'Windows', 'iOS', ... or 'Other'
    device_type     text    not null check (device_type in ('mobile', 'tablet', 'desktop')),
    is_bot          boolean not null
);
comment on table user_agents is 'One row per distinct User-Agent string, parsed with ua-parser.';
