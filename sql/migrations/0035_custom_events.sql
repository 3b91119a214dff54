-- Custom events (issue 13): the tracker's `sluice.track(name, props)` (eventType "custom", with
-- eventName and props). stg_events keeps the name and the properties, and two daily tables count
-- them: daily_custom_events per event name, daily_custom_event_props per name, property key and
-- scalar value, the distinct values of a key capped per day (SLUICE_PROP_VALUES_CAP). Both are
-- recounted per site-day from stg_events' custom events (sql/etl/custom_events_this_run.sql.j2),
-- which the partial index below reads by (site, day). Rows processed before this migration have
-- no name or properties until `sluice etl rebuild`.

alter table stg_events add column event_name text, add column props jsonb;

comment on column stg_events.event_name is
    'A custom event''s eventName (its first 200 characters); null for other events, or when it had none.';
comment on column stg_events.props is
    'A custom event''s props object as sent; null for other events, or when it had none.';

create index stg_events_custom_day_idx on stg_events (site_id, session_started_on) where event_type = 'custom';

create table daily_custom_events (
    site_id         text    not null,
    day             date    not null,
    event_name      text    not null,
    events          bigint  not null,
    visitors        bigint  not null,
    sessions        bigint  not null,
    conversion_rate numeric,
    primary key (site_id, day, event_name)
);
comment on table daily_custom_events is
    'One row per site, UTC day and custom event name (sluice.track): the events of non-bot sessions that started that day.';
comment on column daily_custom_events.site_id is 'The site.';
comment on column daily_custom_events.day is 'UTC day the events'' sessions started (as in daily_metrics).';
comment on column daily_custom_events.event_name is 'The eventName (first 200 characters); ''(none)'' for a custom event without one.';
comment on column daily_custom_events.events is 'Custom events of that name.';
comment on column daily_custom_events.visitors is 'Distinct visitor keys that sent it; does not add up across days.';
comment on column daily_custom_events.sessions is 'Sessions with at least one event of that name.';
comment on column daily_custom_events.conversion_rate is
    'sessions / the day''s sessions (daily_metrics.sessions), 4 decimals.';

create table daily_custom_event_props (
    site_id    text   not null,
    day        date   not null,
    event_name text   not null,
    prop_key   text   not null,
    prop_value text   not null,
    events     bigint not null,
    visitors   bigint not null,
    primary key (site_id, day, event_name, prop_key, prop_value)
);
comment on table daily_custom_event_props is
    'One row per site, UTC day, custom event name, property key and value: the events of non-bot sessions that started that day whose props held that scalar value. At most SLUICE_PROP_VALUES_CAP values per key and day, the rest under ''(other)''.';
comment on column daily_custom_event_props.site_id is 'The site.';
comment on column daily_custom_event_props.day is 'UTC day the events'' sessions started (as in daily_metrics).';
comment on column daily_custom_event_props.event_name is 'As daily_custom_events.event_name.';
comment on column daily_custom_event_props.prop_key is 'The property''s key (first 200 characters).';
comment on column daily_custom_event_props.prop_value is
    'The value as text (first 200 characters; true/false, numbers as JSON writes them; objects, arrays and null are left out); ''(other)'' for the values past the day''s top SLUICE_PROP_VALUES_CAP of the key, ranked by events, then value.';
comment on column daily_custom_event_props.events is 'Custom events of that name with that key and value.';
comment on column daily_custom_event_props.visitors is 'Distinct visitor keys among those events; does not add up across days or values.';
