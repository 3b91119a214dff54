-- `sluice etl backfill --from --to` (and `sluice import` after it wrote) is a run of its own kind: an
-- incremental run whose daily tables are recounted whole for a range of days and the days it touched.

alter table etl_runs drop constraint etl_runs_kind_check;
alter table etl_runs add constraint etl_runs_kind_check
    check (kind in ('incremental', 'rebuild', 'daily', 'backfill', 'cleanup'));

comment on column etl_runs.kind is
    'incremental, rebuild, daily (one day''s daily tables recomputed), backfill (an incremental run whose daily tables are recounted whole for a range of days and the days it touched: sluice etl backfill, sluice import) or cleanup (retention).';
