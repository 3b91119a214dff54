-- monthly_breakdown_sketches: the visitor sketches of daily_breakdown_sketches and
-- daily_click_breakdown unioned by closed UTC month, so that a breakdown over many days unions a
-- value's months instead of its days (the dashboard's 12mo page: ~11,800 sketch unions of days for
-- its 13 session lists, bench/README.md "Reports"). Only months before the current one: a month
-- still running would have to be unioned again on every run (sketches cannot move by differences);
-- its days are read instead. Each run replaces the closed months whose days it recomputed, and fills
-- the closed months without rows (the month that just ended; every month, on the first run after
-- this migration). Filled only with postgresql-hll (migration 0013); empty without it.

create table monthly_breakdown_sketches (
    site_id        text  not null,
    dimension      text  not null,
    month          date  not null,
    value          text  not null,
    visitor_sketch bytea not null,
    primary key (site_id, dimension, month, value)
);
comment on table monthly_breakdown_sketches is
    'One row per site, dimension, closed UTC month and value of daily_breakdown_sketches and daily_click_breakdown: the union of the month''s daily sketches. No rows for the current month. Empty without postgresql-hll.';
comment on column monthly_breakdown_sketches.site_id is 'The site.';
comment on column monthly_breakdown_sketches.dimension is
    'As daily_breakdown_sketches.dimension (session dimensions and path) or daily_click_breakdown.dimension (target_domain, short_code, all).';
comment on column monthly_breakdown_sketches.month is
    'The UTC month (its first day) of the days unioned; always before the month of the ETL run that wrote it.';
comment on column monthly_breakdown_sketches.value is
    'As the daily tables'' value: (none) when the session or click had none; '''' for the clicks'' dimension all.';
comment on column monthly_breakdown_sketches.visitor_sketch is
    'postgresql-hll sketch (log2m 14), as bytea: the union of the value''s daily sketches of the month, so hll_union_agg of months and days equals that of the days alone.';
