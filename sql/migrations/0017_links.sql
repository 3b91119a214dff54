-- Short links: `GET /l/{short_code}` (collector/links.py) answers 302 to the link's target and
-- records a click event carrying the code. Only targets registered here are ever redirected to,
-- so the redirect cannot be used to send people anywhere else. Managed with `sluice links` and
-- `/api/v1/sites/{site}/links`; a link is disabled, never deleted, so its clicks keep their meaning.

create table links (
    short_code text        primary key,
    site_id    text        not null,
    target_url text        not null,
    created_at timestamptz not null default now(),
    disabled   boolean     not null default false,
    -- the collector's redirecting processes reload the links changed since they last looked
    updated_at timestamptz not null default clock_timestamp(),
    constraint links_short_code_shape check (short_code ~ '^[A-Za-z0-9_-]{1,64}$'),
    constraint links_target_is_http check (target_url ~* '^https?://[^/?#]+')
);
create index links_site_idx on links (site_id, short_code);
create index links_updated_idx on links (updated_at);

comment on table links is 'One row per short link: GET /l/{short_code} answers 302 to target_url and records a click event with that shortCode.';
comment on column links.short_code is 'The code in the short URL, unique across the installation: letters, digits, _ and -, at most 64.';
comment on column links.site_id is 'The site whose link it is; its clicks carry this siteId.';
comment on column links.target_url is 'Where the link redirects (http or https only).';
comment on column links.created_at is 'When the link was added.';
comment on column links.disabled is 'A disabled link answers 404 and records nothing; it is kept so that its past clicks still name it.';
comment on column links.updated_at is 'When the link was added or last changed (disabled).';
