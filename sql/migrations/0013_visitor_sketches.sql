-- Visitor sketches: distinct visitors over any range of days, from two daily tables.
--
-- `visitors` in daily_metrics and daily_breakdown is exact for its day, but does not add up across
-- days (a visitor of two days counts in both). These tables keep a HyperLogLog sketch of the same
-- visitors (postgresql-hll, log2m 14: exact up to ~1,280 visitors, then ~0.8% standard error); the
-- sketches of any days union into the distinct visitors of those days. They are stored as bytea
-- (the extension casts bytea to hll; this migration adds the cast back), so the schema is the same
-- with or without the extension. The extension is optional: without it (not installed, or no right
-- to create it) the tables stay empty and the reports count distinct visitors exactly from
-- `sessions`. Installed later: `create extension hll schema public; create cast (hll as bytea)
-- without function;` as a superuser, then `sluice etl rebuild`.

do $$
begin
    if exists (select 1 from pg_available_extensions where name = 'hll') then
        create extension if not exists hll schema public;
        if not exists (select from pg_cast where castsource = 'hll'::regtype and casttarget = 'bytea'::regtype) then
            create cast (hll as bytea) without function;
        end if;
    else
        raise notice 'postgresql-hll is not installed: reports count distinct visitors exactly from sessions';
    end if;
exception when insufficient_privilege then
    raise notice 'cannot create extension hll (%): reports count distinct visitors exactly from sessions', sqlerrm;
end;
$$;

create table daily_visitor_sketches (
    site_id        text  not null,
    day            date  not null,
    visitor_sketch bytea not null,
    primary key (site_id, day)
);
comment on table daily_visitor_sketches is
    'One row per daily_metrics row: a HyperLogLog sketch of the day''s visitors, to count distinct visitors over several days. Empty without postgresql-hll.';
comment on column daily_visitor_sketches.site_id is 'The site.';
comment on column daily_visitor_sketches.day is 'The UTC day (sessions by the day they started).';
comment on column daily_visitor_sketches.visitor_sketch is
    'postgresql-hll sketch (log2m 14) of the day''s non-bot visitor keys, as bytea: hll_cardinality(hll_union_agg(visitor_sketch::hll)) over any days.';

create table daily_breakdown_sketches (
    site_id        text  not null,
    dimension      text  not null,
    day            date  not null,
    value          text  not null,
    visitor_sketch bytea not null,
    primary key (site_id, dimension, day, value)
);
comment on table daily_breakdown_sketches is
    'One row per daily_breakdown row: a HyperLogLog sketch of its visitors, to count distinct visitors per value over several days. Empty without postgresql-hll.';
comment on column daily_breakdown_sketches.site_id is 'The site.';
comment on column daily_breakdown_sketches.dimension is 'As daily_breakdown.dimension.';
comment on column daily_breakdown_sketches.day is 'The UTC day (sessions by the day they started).';
comment on column daily_breakdown_sketches.value is 'As daily_breakdown.value: ''(none)'' when the session had none.';
comment on column daily_breakdown_sketches.visitor_sketch is
    'postgresql-hll sketch (log2m 14) of the visitor keys of that value''s non-bot sessions that day (path: of the sessions that viewed it), as bytea.';
