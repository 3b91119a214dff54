-- The ETL's own bookkeeping: one row per run, and the watermark that says what has been processed.

create table etl_runs (
    run_id           bigint      generated always as identity primary key,
    kind             text        not null check (kind in ('incremental', 'rebuild', 'daily', 'cleanup')),
    status           text        not null default 'running'
                                 check (status in ('running', 'succeeded', 'failed', 'abandoned')),
    started_at       timestamptz not null default clock_timestamp(),
    finished_at      timestamptz,
    -- the batch: events with watermark_from <= txid < watermark_to
    watermark_from   xid8,
    watermark_to     xid8,
    events_processed bigint      not null default 0,
    events_too_late  bigint      not null default 0,
    rows_written     jsonb       not null default '{}',  -- {"sessions": 12, ...}: rows inserted or replaced
    error            text
);
comment on table etl_runs is 'One row per ETL run (incremental, rebuild, daily recompute, cleanup).';

-- A single row. `watermark` is the snapshot xmin of the last successful run: every event with
-- txid below it has been processed. Written in the same transaction as the run's results.
create table etl_state (
    id        boolean primary key default true check (id),
    watermark xid8    not null default '0'
);
insert into etl_state default values;
