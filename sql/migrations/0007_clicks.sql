-- Clicks: link clicks and short-link redirects, one row each, and their hourly counts.

create table clicks (
    event_id      uuid        primary key,
    site_id       text        not null,
    occurred_at   timestamptz not null,
    session_key   text        not null,
    visitor_key   text        not null,
    source_path   text,
    target_url    text,
    target_domain text,
    short_code    text,
    link_text     text,
    referrer      text,
    country       text,
    device_type   text,
    browser       text,
    is_bot        boolean     not null
);
comment on table clicks is 'One row per click event (type click, or any event with a shortCode).';
create index clicks_site_time_idx on clicks (site_id, occurred_at);

create table hourly_click_counts (
    site_id       text        not null,
    hour          timestamptz not null,  -- UTC hour the clicks happened in
    target_url    text        not null,  -- '' when the click had none
    short_code    text        not null,  -- '' when the click had none
    target_domain text,
    clicks        bigint      not null,
    visitors      bigint      not null,
    primary key (site_id, hour, target_url, short_code)
);
comment on table hourly_click_counts is 'One row per site, UTC hour, target URL and short code; bots excluded.';
