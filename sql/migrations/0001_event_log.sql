-- The raw event log: one row per event, append-only, range-partitioned by arrival time so that
-- retention is a partition drop. `payload` is the whole event as the client sent it; the typed
-- columns are what the ETL and analysts filter on.
--
-- "Unprocessed" is found by transaction id, not by a flag: `txid` is the id of the inserting
-- transaction. The ETL remembers the xmin of its own snapshot as a watermark; every transaction
-- below it has finished, so `txid >= previous watermark and txid < this snapshot's xmin` is
-- exactly the set of events committed since the last run, including ones whose insert started
-- earlier and committed late. No row is ever updated to mark it processed.

create table events (
    event_id         uuid        not null,
    site_id          text        not null,
    event_type       text        not null,
    -- when it happened: the client's timestamp corrected for clock skew, clamped to not be in
    -- the future; received_at when the client sent none
    occurred_at      timestamptz not null,
    client_timestamp timestamptz,  -- the client's timestamp exactly as sent
    received_at      timestamptz not null,
    visitor_id       text,
    session_id       text,
    ip_hash          text,         -- salted hash of the client IP; the salt rotates daily
    country          text,         -- ISO 3166-1 alpha-2
    user_agent       text,
    payload          jsonb       not null,
    txid             xid8        not null default pg_current_xact_id()
) partition by range (received_at);

comment on table events is 'Raw event log: one row per accepted event. Partitioned by received_at (UTC days).';
comment on column events.txid is 'Id of the inserting transaction; the ETL watermark compares against it.';

-- Catches rows for a day whose partition does not exist yet, so ingestion never fails for want
-- of a partition; ensure_event_partitions() moves such rows out.
create table events_default partition of events default;

create index events_txid_idx on events (txid);
create index events_site_occurred_idx on events (site_id, occurred_at);

-- Retries are safe: the collector inserts an event only if its id is new here. A plain table,
-- not partitioned, because a unique key on `events` would have to include `received_at`, which
-- differs between a request and its retry. Pruned together with the raw log's retention.
create table event_ids (
    event_id    uuid        primary key,
    received_at timestamptz not null
);
create index event_ids_received_idx on event_ids (received_at);

-- One random salt per UTC day for hashing client IPs. Old salts are deleted, after which a
-- day's hashes cannot be linked back to an address or to another day.
create table daily_salts (
    day  date  primary key,
    salt bytea not null
);

-- Creates the daily partitions events_YYYYMMDD for [from_day, from_day + days) (UTC), moving in
-- any rows that landed in the default partition for those days. Returns how many it created.
create function ensure_event_partitions(from_day date, days integer) returns integer
language plpgsql as $$
declare
    day     date;
    part    text;
    lo      timestamptz;
    hi      timestamptz;
    created integer := 0;
begin
    for i in 0 .. days - 1 loop
        day := from_day + i;
        part := 'events_' || to_char(day, 'YYYYMMDD');
        continue when to_regclass(quote_ident(part)) is not null;
        lo := day::timestamp at time zone 'UTC';
        hi := (day + 1)::timestamp at time zone 'UTC';
        -- serialise with concurrent callers and with inserts into the default partition
        lock table events_default in share row exclusive mode;
        continue when to_regclass(quote_ident(part)) is not null;
        execute format('create table %I (like events including defaults including constraints)', part);
        execute format(
            'with moved as (delete from events_default where received_at >= %L and received_at < %L returning *)
             insert into %I select * from moved', lo, hi, part);
        execute format('alter table events attach partition %I for values from (%L) to (%L)', part, lo, hi);
        created := created + 1;
    end loop;
    return created;
end;
$$;

select ensure_event_partitions((now() at time zone 'UTC')::date - 1, 9);
