-- monthly_breakdown_sketches: the visitor sketches of daily_breakdown_sketches and
-- daily_click_breakdown unioned by closed UTC month, so that a breakdown over many days unions a
-- value's months instead of its days (the dashboard's 12mo page: ~11,800 sketch unions of days for
-- its 13 session lists, bench/README.md "Reports"). Only months before the current one: a month
-- still running would have to be unioned again on every run (sketches cannot move by differences);
-- its days are read instead. Each run replaces the closed months whose days it recomputed, and fills
-- the closed months without rows (the month that just ended; every month, on the first run after
-- this migration). Filled only with postgresql-hll (migration 0013); empty without it.
-- Beside each sketch, the sums the reports' lists take of the month's daily rows (pageviews and
-- sessions of daily_breakdown, clicks of daily_click_breakdown, the count of day rows and their
-- exact visitors), so that a list over whole months reads a value's months instead of its days
-- (the 12mo page summed 18,200 daily_breakdown rows per list, bench/README.md "Reports").

create table monthly_breakdown_sketches (
    site_id        text  not null,
    dimension      text  not null,
    month          date  not null,
    value          text  not null,
    visitor_sketch bytea not null,
    pageviews      bigint,
    sessions       bigint,
    clicks         bigint,
    day_rows       integer not null,
    day_visitors   bigint not null,
    primary key (site_id, dimension, month, value)
);
comment on table monthly_breakdown_sketches is
    'One row per site, dimension, closed UTC month and value of daily_breakdown_sketches and daily_click_breakdown: the union of the month''s daily sketches and the sums of its daily rows. No rows for the current month. Empty without postgresql-hll.';
comment on column monthly_breakdown_sketches.site_id is 'The site.';
comment on column monthly_breakdown_sketches.dimension is
    'As daily_breakdown_sketches.dimension (session dimensions and path) or daily_click_breakdown.dimension (target_domain, short_code, all).';
comment on column monthly_breakdown_sketches.month is
    'The UTC month (its first day) of the days unioned; always before the month of the ETL run that wrote it.';
comment on column monthly_breakdown_sketches.value is
    'As the daily tables'' value: (none) when the session or click had none; '''' for the clicks'' dimension all.';
comment on column monthly_breakdown_sketches.visitor_sketch is
    'postgresql-hll sketch (log2m 14), as bytea: the union of the value''s daily sketches of the month, so hll_union_agg of months and days equals that of the days alone.';
comment on column monthly_breakdown_sketches.pageviews is
    'Session dimensions and path: the sum of the month''s daily_breakdown.pageviews of the value; null for the click dimensions.';
comment on column monthly_breakdown_sketches.sessions is
    'Session dimensions and path: the sum of the month''s daily_breakdown.sessions of the value; null for the click dimensions.';
comment on column monthly_breakdown_sketches.clicks is
    'Click dimensions: the sum of the month''s daily_click_breakdown.clicks of the value; null for the session dimensions.';
comment on column monthly_breakdown_sketches.day_rows is
    'The number of the month''s daily rows of the value (its days with data): a report over one such day answers with that day''s exact visitors.';
comment on column monthly_breakdown_sketches.day_visitors is
    'The sum of the month''s daily rows'' exact visitors of the value: an upper bound of its distinct visitors, by which the reports rank candidates.';
