-- Events per hour and type, with their durations (the `/analytics/summary` and `/analytics/dashboard`
-- reports), and an index for the per-short-code reports.

alter table stg_events add column duration_ms numeric;
comment on column stg_events.duration_ms is
    'The event''s durationMs (a non-negative JSON number: how long what it reports took), else null.';

create table hourly_event_counts (
    site_id           text        not null,
    hour              timestamptz not null,
    event_type        text        not null,
    events            bigint      not null,
    timed_events      bigint      not null,
    total_duration_ms numeric     not null,
    primary key (site_id, hour, event_type)
);
comment on table hourly_event_counts is
    'One row per site, UTC hour and event type with at least one event; bot sessions'' events left out.';
comment on column hourly_event_counts.site_id is 'The site.';
comment on column hourly_event_counts.hour is 'The UTC hour the events happened in (occurred_at).';
comment on column hourly_event_counts.event_type is 'eventType: pageview, click, custom or any other name.';
comment on column hourly_event_counts.events is 'Events of that type in that hour.';
comment on column hourly_event_counts.timed_events is 'Of those, the events carrying a durationMs.';
comment on column hourly_event_counts.total_duration_ms is
    'Sum of their durationMs: average = total_duration_ms / timed_events.';
create index hourly_event_counts_hour_idx on hourly_event_counts (hour);

-- every click of one short code, by time: /analytics/stats/{short_code}
create index clicks_short_code_idx on clicks (short_code, occurred_at) where short_code is not null;
