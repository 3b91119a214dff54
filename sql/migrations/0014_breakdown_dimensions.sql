-- daily_breakdown answers every session dimension the reports break down by: entry and exit page,
-- UTM medium and campaign join the dimensions of migration 0006 (sql/etl/dimensions.j2 lists them
-- for the ETL). Rows for days processed before this migration appear after `sluice etl rebuild`.

alter table daily_breakdown drop constraint daily_breakdown_dimension_check;
alter table daily_breakdown add constraint daily_breakdown_dimension_check check (dimension in (
    'path', 'entry_path', 'exit_path', 'referrer_domain', 'channel', 'country', 'device_type', 'browser', 'os',
    'utm_source', 'utm_medium', 'utm_campaign'
));

comment on column daily_breakdown.dimension is
    'path, entry_path, exit_path, referrer_domain, channel, country, device_type, browser, os, utm_source, utm_medium or utm_campaign.';
comment on column daily_breakdown.value is
    'The dimension''s value: a page for path, else the session''s (its first event''s; exit_path: its last event''s); (none) when it had none.';
