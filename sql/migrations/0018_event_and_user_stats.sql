-- Seed 002's statistics: per event type and route by hour (hourly_event_stats), and per user
-- (user_stats). Both are recounted from stg_events, which now keeps what they read from each
-- event's payload. Events stored before this migration have these columns empty until
-- `sluice etl rebuild` reads their payloads again.

alter table stg_events
    add column user_id     text,
    add column route       text    not null default '',
    add column status      integer,
    add column duration_ms double precision,
    add column is_error    boolean not null default false;

comment on column stg_events.user_id is 'The event''s userId, when it sent one (the host app''s user: sluice.client, the middleware).';
comment on column stg_events.route is 'A request event''s route template (/users/{id}); empty for every other event and for a request that sent none.';
comment on column stg_events.status is 'The event''s status (a request''s HTTP status), when it sent a number from 0 to 999.';
comment on column stg_events.duration_ms is 'The event''s durationMs, when it sent a number.';
comment on column stg_events.is_error is 'status >= 400, or the event carries an error field (neither null nor false).';

-- The incremental runs recount the hours and the users a batch touched, reading stg_events by these.
create index stg_events_site_time_idx on stg_events (site_id collate "C", occurred_at);
create index stg_events_user_idx on stg_events (site_id collate "C", (coalesce(user_id, visitor_key)) collate "C");

create table hourly_event_stats (
    site_id         text             not null,
    hour            timestamptz      not null,
    event_type      text             not null,
    route           text             not null,
    count           bigint           not null,
    error_count     bigint           not null,
    success_rate    numeric          not null,
    avg_duration_ms double precision,
    min_duration_ms double precision,
    max_duration_ms double precision,
    p50_duration_ms double precision,
    p95_duration_ms double precision,
    primary key (site_id, hour, event_type, route)
);

comment on table hourly_event_stats is 'One row per site, UTC hour, event type and route (empty for events other than request); every event counts, bots included (an API''s callers are often scripts).';
comment on column hourly_event_stats.site_id is 'The site.';
comment on column hourly_event_stats.hour is 'The UTC hour the events happened in (its start).';
comment on column hourly_event_stats.event_type is 'The events'' type.';
comment on column hourly_event_stats.route is 'The request events'' route template (/users/{id}); empty for other events.';
comment on column hourly_event_stats.count is 'Events.';
comment on column hourly_event_stats.error_count is 'Events with status >= 400 or an error field.';
comment on column hourly_event_stats.success_rate is '1 - error_count / count, rounded to 4 places.';
comment on column hourly_event_stats.avg_duration_ms is 'Mean durationMs of the events carrying one; null when none does.';
comment on column hourly_event_stats.min_duration_ms is 'Smallest durationMs; null when no event carries one.';
comment on column hourly_event_stats.max_duration_ms is 'Largest durationMs; null when no event carries one.';
comment on column hourly_event_stats.p50_duration_ms is 'Median durationMs (interpolated, percentile_cont); null when no event carries one.';
comment on column hourly_event_stats.p95_duration_ms is '95th percentile of durationMs (interpolated); null when no event carries one.';

create table user_stats (
    site_id         text             not null,
    user_key        text             not null,
    is_user_id      boolean          not null,
    first_seen_at   timestamptz      not null,
    last_seen_at    timestamptz      not null,
    events          bigint           not null,
    events_by_type  jsonb            not null,
    sessions        bigint           not null,
    pageviews       bigint           not null,
    errors          bigint           not null,
    avg_duration_ms double precision,
    primary key (site_id, user_key)
);

comment on table user_stats is 'One row per site and user: the userId when events sent one, else the visitor key; every event counts, bots included.';
comment on column user_stats.site_id is 'The site.';
comment on column user_stats.user_key is 'The events'' userId, or (for events without one) their visitor key (sessions.visitor_key).';
comment on column user_stats.is_user_id is 'user_key is a userId the events sent (false: a visitor key).';
comment on column user_stats.first_seen_at is 'The user''s first event.';
comment on column user_stats.last_seen_at is 'The user''s last event.';
comment on column user_stats.events is 'Events.';
comment on column user_stats.events_by_type is 'Events per event type: {"pageview": 3, "request": 12, ...}.';
comment on column user_stats.sessions is 'Distinct sessions the user''s events belong to.';
comment on column user_stats.pageviews is 'Events of type pageview.';
comment on column user_stats.errors is 'Events with status >= 400 or an error field.';
comment on column user_stats.avg_duration_ms is 'Mean durationMs of the user''s events carrying one; null when none does.';
