-- hourly_metrics: daily_metrics by UTC hour, with a visitor sketch per hour, so that the reports'
-- `24h` period (24 whole hours, not whole days) and hourly points read ~24-744 small rows instead of
-- the period's sessions (bench/README.md, "Reports": 0.8-2.4 s at 10M events). Filled, like the
-- visitor sketches, only with postgresql-hll (migration 0013): without it the reports count from
-- `sessions` as before, and the table stays empty.

create table hourly_metrics (
    site_id          text        not null,
    hour             timestamptz not null,
    pageviews        bigint      not null,
    events           bigint      not null,
    visitors         bigint      not null,
    sessions         bigint      not null,
    bounces          bigint      not null,
    total_duration_s bigint      not null,
    visitor_sketch   bytea       not null,
    primary key (site_id, hour)
);
comment on table hourly_metrics is
    'One row per site and UTC hour in which at least one non-bot session started: daily_metrics by hour (sessions by the hour they started). Empty without postgresql-hll.';
comment on column hourly_metrics.site_id is 'The site.';
comment on column hourly_metrics.hour is 'The UTC hour the sessions started (its first instant).';
comment on column hourly_metrics.pageviews is 'Pageviews of the hour''s sessions.';
comment on column hourly_metrics.events is 'Events of the hour''s sessions.';
comment on column hourly_metrics.visitors is 'Distinct visitor keys of the hour''s sessions; does not add up across hours (union the sketches).';
comment on column hourly_metrics.sessions is 'Sessions that started in that hour.';
comment on column hourly_metrics.bounces is 'Sessions of exactly one event.';
comment on column hourly_metrics.total_duration_s is 'Sum of the sessions'' durations: over several hours, sum it and divide by the summed sessions.';
comment on column hourly_metrics.visitor_sketch is
    'postgresql-hll sketch (log2m 14) of the hour''s non-bot visitor keys, as bytea: hll_cardinality(hll_union_agg(visitor_sketch::hll)) over any hours.';
