-- Retention tiers (issue 13, seed 004: raw 90 days, daily 2 years, monthly forever): monthly
-- rollups the daily retention never deletes, and the point from which the raw log is complete, so
-- that a rebuild recomputes only what the raw log still covers (etl/pipeline.py: kept_before).
-- A session and all its events count in the UTC month its session started, as in the daily tables;
-- visitors are exact distinct counts over the month. The ETL moves these rows by the sessions and
-- clicks each run changes; migration 0044 fills them from the sessions and clicks already stored
-- (after 0042, which adds `city`).

create table monthly_metrics (
    site_id                text    not null,
    month                  date    not null,  -- its first day
    pageviews              bigint  not null,
    events                 bigint  not null,
    visitors               bigint  not null,
    sessions               bigint  not null,
    bounces                bigint  not null,
    total_duration_s       bigint  not null,
    bounce_rate            numeric not null,
    avg_session_duration_s numeric not null,
    primary key (site_id, month)
);
comment on table monthly_metrics is
    'One row per site and UTC month with at least one non-bot session: daily_metrics by month, visitors distinct over the month. Kept forever.';
comment on column monthly_metrics.site_id is 'The site.';
comment on column monthly_metrics.month is 'The UTC month the sessions started: its first day.';
comment on column monthly_metrics.pageviews is 'Pageviews of the month''s sessions.';
comment on column monthly_metrics.events is 'Events of the month''s sessions.';
comment on column monthly_metrics.visitors is 'Distinct visitor keys over the whole month (exact); does not add up across months.';
comment on column monthly_metrics.sessions is 'Sessions that started in that month.';
comment on column monthly_metrics.bounces is 'Sessions of exactly one event.';
comment on column monthly_metrics.total_duration_s is 'Sum of the sessions'' durations: over several months, sum it and divide by the summed sessions.';
comment on column monthly_metrics.bounce_rate is 'bounces / sessions, 4 decimals.';
comment on column monthly_metrics.avg_session_duration_s is 'total_duration_s / sessions, 1 decimal.';

create table monthly_breakdown (
    site_id   text   not null,
    dimension text   not null,
    month     date   not null,
    value     text   not null,
    pageviews bigint not null,
    visitors  bigint not null,
    sessions  bigint not null,
    primary key (site_id, dimension, month, value)
);
comment on table monthly_breakdown is
    'One row per site, dimension, UTC month and value, bots left out: daily_breakdown by month, visitors distinct over the month. Kept forever.';
comment on column monthly_breakdown.site_id is 'The site.';
comment on column monthly_breakdown.dimension is 'As daily_breakdown.dimension (the same list, sql/etl/dimensions.j2, and path).';
comment on column monthly_breakdown.month is 'The UTC month the sessions started: its first day.';
comment on column monthly_breakdown.value is 'As daily_breakdown.value: a page for path, else the session''s; (none) when it had none.';
comment on column monthly_breakdown.pageviews is 'For path: pageviews of that page; else the sessions'' pageviews.';
comment on column monthly_breakdown.visitors is 'Distinct visitors over the month (exact) of those sessions; for path: that viewed the page.';
comment on column monthly_breakdown.sessions is 'Sessions with that value; for path: sessions that viewed the page.';

create table monthly_click_counts (
    site_id       text   not null,
    month         date   not null,
    target_url    text   not null,
    short_code    text   not null,
    target_domain text,
    clicks        bigint not null,
    visitors      bigint not null,
    primary key (site_id, month, target_url, short_code)
);
comment on table monthly_click_counts is
    'One row per site, UTC month, target URL and short code; bots left out: hourly_click_counts by month. Kept forever.';
comment on column monthly_click_counts.site_id is 'The site.';
comment on column monthly_click_counts.month is 'The UTC month the clicks happened in: its first day.';
comment on column monthly_click_counts.target_url is 'The target URL; empty when the clicks had none.';
comment on column monthly_click_counts.short_code is 'The short code; empty when the clicks had none.';
comment on column monthly_click_counts.target_domain is 'The target''s host without www.';
comment on column monthly_click_counts.clicks is 'Clicks.';
comment on column monthly_click_counts.visitors is 'Distinct visitors over the month (exact).';

-- sluice etl cleanup sets it when it drops raw partitions: events received before it may be gone.
alter table etl_state add column raw_log_from timestamptz;
comment on column etl_state.raw_log_from is
    'Events received before this instant may have been dropped by retention (null: the raw log is whole). A rebuild keeps the rows of the days before the range the raw log fully covers.';
