-- hourly_event_stats.timed_count: how many events carry a durationMs, so that an average over
-- several hours weighs each hour's avg_duration_ms by it (/analytics/summary); and user_stats by
-- user_key alone, for /analytics/user/{id} asked across every site. Hours counted before this
-- migration get their count from stg_events while it still holds their events (else 0, so they
-- add nothing to an average until `sluice etl rebuild`).

alter table hourly_event_stats add column timed_count bigint not null default 0;
comment on column hourly_event_stats.timed_count is
    'Events carrying a durationMs: the weight of avg_duration_ms in an average over several hours.';

update hourly_event_stats as h
set timed_count = t.timed_count
from (
    select
        site_id,
        date_trunc('hour', occurred_at at time zone 'UTC') at time zone 'UTC' as hour,
        event_type,
        route,
        count(duration_ms) as timed_count
    from stg_events
    group by 1, 2, 3, 4
) as t
where h.site_id = t.site_id and h.hour = t.hour and h.event_type = t.event_type and h.route = t.route;

create index user_stats_user_key_idx on user_stats (user_key);
