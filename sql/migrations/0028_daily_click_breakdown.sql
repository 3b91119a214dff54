-- daily_click_breakdown: clicks and clicking visitors per site, UTC day, target domain or short
-- code, with a visitor sketch per row, so that the click dimensions of the reports (breakdown
-- target_domain and short_code) read a few rows per day instead of counting the period's distinct
-- visitors from `clicks` (bench/README.md, "Reports": 0.1-0.5 s at 10M events). A row of dimension
-- `all` per day holds every click of the day (the breakdowns' totals). Filled, like the visitor
-- sketches, only with postgresql-hll (migration 0013): without it the reports count from `clicks`
-- as before, and the table stays empty.

create table daily_click_breakdown (
    site_id        text   not null,
    dimension      text   not null check (dimension in ('target_domain', 'short_code', 'all')),
    day            date   not null,
    value          text   not null,
    clicks         bigint not null,
    visitors       bigint not null,
    visitor_sketch bytea  not null,
    primary key (site_id, dimension, day, value)
);
comment on table daily_click_breakdown is
    'One row per site, UTC day, click dimension and value with at least one non-bot click (clicks by the day they occurred), and one row of dimension all per site and day. Empty without postgresql-hll.';
comment on column daily_click_breakdown.site_id is 'The site.';
comment on column daily_click_breakdown.dimension is
    'target_domain or short_code (as in clicks), or all: every click of the day, value ''''.';
comment on column daily_click_breakdown.day is 'The UTC day of the clicks (occurred_at).';
comment on column daily_click_breakdown.value is
    'The click''s target domain or short code; (none) when it had none; '''' for dimension all.';
comment on column daily_click_breakdown.clicks is 'Non-bot clicks with that value that day.';
comment on column daily_click_breakdown.visitors is
    'Distinct visitor keys of those clicks; does not add up across days (union the sketches).';
comment on column daily_click_breakdown.visitor_sketch is
    'postgresql-hll sketch (log2m 14) of those clicks'' visitor keys, as bytea: hll_cardinality(hll_union_agg(visitor_sketch::hll)) over any days.';
