-- Fills the monthly rollups of migration 0039 from the sessions and clicks already stored, as the
-- ETL's templates count them (sql/etl/monthly_*.sql.j2): after this, each run moves their rows.
-- (The dimensions of sql/etl/dimensions.j2 when this was written.)

insert into monthly_metrics
select site_id, month, pageviews, events, visitors, sessions, bounces, total_duration_s,
       round(bounces::numeric / sessions, 4), round(total_duration_s::numeric / sessions, 1)
from (
    select site_id, date_trunc('month', started_on)::date as month, sum(pageview_count) as pageviews,
           sum(event_count) as events, count(distinct visitor_key) as visitors, count(*) as sessions,
           count(*) filter (where is_bounce) as bounces, sum(duration_s) as total_duration_s
    from sessions where not is_bot group by 1, 2
) as totals;

insert into monthly_breakdown
select s.site_id, d.dimension, date_trunc('month', s.started_on)::date, v.value,
       sum(s.pageview_count), count(distinct s.visitor_key), count(*)
from sessions as s
cross join lateral (values
    ('entry_path', s.entry_path), ('exit_path', s.exit_path), ('referrer_domain', s.referrer_domain),
    ('channel', s.channel), ('country', s.country), ('city', s.city), ('device_type', s.device_type),
    ('browser', s.browser), ('os', s.os), ('utm_source', s.utm_source), ('utm_medium', s.utm_medium),
    ('utm_campaign', s.utm_campaign)
) as d (dimension, raw_value)
cross join lateral (select coalesce(d.raw_value, '(none)') as value) as v
where not s.is_bot
group by 1, 2, 3, 4;

insert into monthly_breakdown
select s.site_id, 'path', date_trunc('month', s.started_on)::date, p.key,
       sum(p.value::bigint), count(distinct s.visitor_key), count(*)
from sessions as s
cross join lateral jsonb_each_text(s.path_pageviews) as p
where not s.is_bot
group by 1, 3, 4;

insert into monthly_click_counts
select site_id, date_trunc('month', occurred_at at time zone 'UTC')::date, coalesce(target_url, ''),
       coalesce(short_code, ''), min(target_domain), count(*), count(distinct visitor_key)
from clicks where not is_bot group by 1, 2, 3, 4;
