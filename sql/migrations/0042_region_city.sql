-- Region and city beside country (issue 13, seeds 000/001). With SLUICE_GEOIP_DB naming a City
-- database (GeoLite2-City, DB-IP City), the collector stores the client's ISO 3166-2 subdivision
-- and the city's English name; never the address. Without one both stay null. The ETL carries them
-- from the raw log to stg_events (which re-read events take them from) and to each session (its
-- first event's), and daily_breakdown gains the dimension `city` (sql/etl/dimensions.j2). Rows
-- processed before this migration have null cities until `sluice etl rebuild`.

alter table events add column region text, add column city text;
alter table stg_events add column region text, add column city text;
alter table sessions add column region text, add column city text;

comment on column events.region is
    'ISO 3166-2 code of the client''s subdivision (e.g. DE-BE), from the City database SLUICE_GEOIP_DB names; null without one, or when it does not know.';
comment on column events.city is
    'English name of the client''s city, from the City database SLUICE_GEOIP_DB names; null without one, or when it does not know.';
comment on column stg_events.region is 'ISO 3166-2 subdivision code (e.g. DE-BE); null when unknown.';
comment on column stg_events.city is 'City, English name; null when unknown.';
comment on column sessions.region is 'The first event''s ISO 3166-2 subdivision code (e.g. DE-BE); null when unknown.';
comment on column sessions.city is 'The first event''s city (English name); null when unknown.';

alter table daily_breakdown drop constraint daily_breakdown_dimension_check;
alter table daily_breakdown add constraint daily_breakdown_dimension_check check (dimension in (
    'path', 'entry_path', 'exit_path', 'referrer_domain', 'channel', 'country', 'city', 'device_type', 'browser',
    'os', 'utm_source', 'utm_medium', 'utm_campaign'
));

comment on column daily_breakdown.dimension is
    'path, entry_path, exit_path, referrer_domain, channel, country, city, device_type, browser, os, utm_source, utm_medium or utm_campaign.';
