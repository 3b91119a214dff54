-- weekly_breakdown_sketches: the visitor sketches of daily_breakdown_sketches and
-- daily_click_breakdown unioned by closed ISO week (Monday to Sunday, UTC), as
-- monthly_breakdown_sketches (migration 0048) unions them by month, with the same sums beside each
-- sketch. A period of 30 days covers no whole month, so each of the dashboard's 13 session lists
-- unioned 30 daily sketches per value (~4,300 unions for the page, bench/README.md "Reports");
-- by weeks, 3-4 weeks and the days at either end (~12 per value). Only weeks before the current
-- one; each run replaces the closed weeks whose days it recomputed and fills the closed weeks
-- without rows (the week that just ended; every week, on the first run after this migration).
-- Filled only with postgresql-hll (migration 0013); empty without it.

create table weekly_breakdown_sketches (
    site_id        text  not null,
    dimension      text  not null,
    week           date  not null,
    value          text  not null,
    visitor_sketch bytea not null,
    pageviews      bigint,
    sessions       bigint,
    clicks         bigint,
    day_rows       integer not null,
    day_visitors   bigint not null,
    primary key (site_id, dimension, week, value)
);
comment on table weekly_breakdown_sketches is
    'One row per site, dimension, closed ISO week and value of daily_breakdown_sketches and daily_click_breakdown: the union of the week''s daily sketches and the sums of its daily rows. No rows for the current week. Empty without postgresql-hll.';
comment on column weekly_breakdown_sketches.site_id is 'The site.';
comment on column weekly_breakdown_sketches.dimension is
    'As daily_breakdown_sketches.dimension (session dimensions and path) or daily_click_breakdown.dimension (target_domain, short_code, all).';
comment on column weekly_breakdown_sketches.week is
    'The ISO week (its Monday, UTC) of the days unioned; always before the week of the ETL run that wrote it.';
comment on column weekly_breakdown_sketches.value is
    'As the daily tables'' value: (none) when the session or click had none; '''' for the clicks'' dimension all.';
comment on column weekly_breakdown_sketches.visitor_sketch is
    'postgresql-hll sketch (log2m 14), as bytea: the union of the value''s daily sketches of the week, so hll_union_agg of weeks and days equals that of the days alone.';
comment on column weekly_breakdown_sketches.pageviews is
    'Session dimensions and path: the sum of the week''s daily_breakdown.pageviews of the value; null for the click dimensions.';
comment on column weekly_breakdown_sketches.sessions is
    'Session dimensions and path: the sum of the week''s daily_breakdown.sessions of the value; null for the click dimensions.';
comment on column weekly_breakdown_sketches.clicks is
    'Click dimensions: the sum of the week''s daily_click_breakdown.clicks of the value; null for the session dimensions.';
comment on column weekly_breakdown_sketches.day_rows is
    'The number of the week''s daily rows of the value (its days with data): a report over one such day answers with that day''s exact visitors.';
comment on column weekly_breakdown_sketches.day_visitors is
    'The sum of the week''s daily rows'' exact visitors of the value: an upper bound of its distinct visitors, by which the reports rank candidates.';
