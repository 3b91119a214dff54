-- `sluice etl backfill --from --to` (and `sluice import` after it wrote) records its recount of a
-- range of days as a run of its own kind.

alter table etl_runs drop constraint etl_runs_kind_check;
alter table etl_runs add constraint etl_runs_kind_check
    check (kind in ('incremental', 'rebuild', 'daily', 'backfill', 'cleanup'));

comment on column etl_runs.kind is
    'incremental, rebuild, daily (one day''s daily tables recomputed), backfill (the daily tables of a range of days recomputed, after an incremental run: sluice etl backfill, sluice import) or cleanup (retention).';
