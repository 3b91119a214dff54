-- daily_breakdown_totals: the rest of daily_metrics' counts (events, bounces, durations) for the
-- sessions of each session-dimension value and day, so that a filtered summary or series
-- (`filter=DIMENSION:VALUE`) reads a few rows per day from daily_breakdown (pageviews, sessions,
-- a day's visitors), this table, and daily_breakdown_sketches (visitors over several days), instead
-- of the period's sessions (bench/README.md, "Reports": 0.6-2.3 s at 10M events). Filled, like the
-- visitor sketches, only with postgresql-hll (migration 0013): without it filtered reports count
-- from `sessions` as before, and the table stays empty.

create table daily_breakdown_totals (
    site_id          text   not null,
    dimension        text   not null,
    day              date   not null,
    value            text   not null,
    events           bigint not null,
    bounces          bigint not null,
    total_duration_s bigint not null,
    primary key (site_id, dimension, day, value)
);
comment on table daily_breakdown_totals is
    'One row per daily_breakdown row of a session dimension (not path): the events, bounces and durations of that value''s non-bot sessions that day, for filtered reports. Empty without postgresql-hll.';
comment on column daily_breakdown_totals.site_id is 'The site.';
comment on column daily_breakdown_totals.dimension is 'As daily_breakdown.dimension, but never path.';
comment on column daily_breakdown_totals.day is 'The UTC day (sessions by the day they started).';
comment on column daily_breakdown_totals.value is 'As daily_breakdown.value: ''(none)'' when the session had none.';
comment on column daily_breakdown_totals.events is 'Events of that value''s sessions.';
comment on column daily_breakdown_totals.bounces is 'Those sessions of exactly one event.';
comment on column daily_breakdown_totals.total_duration_s is
    'Sum of those sessions'' durations: over several days, sum it and divide by the summed sessions of daily_breakdown.';
