-- The user a Segment, RudderStack or PostHog event names (userId; PostHog's identified
-- distinct_id), beside the visitor (anonymousId, else userId): README "Segment and RudderStack".
-- Computed from the payload as each row is written, so the collector's COPY is unchanged; adding
-- it rewrites the stored events once.

alter table events add column user_id text generated always as (nullif(payload ->> 'userId', '')) stored;

comment on column events.user_id is 'userId as sent (Segment, RudderStack, the tracker''s events that carry one; PostHog''s identified user): the known user beside visitor_id, the anonymous one.';

-- A new day's partition is made like `events` (0001's ensure_event_partitions), now with the
-- generated column as generated (ATTACH requires it), and the rows moved in from the default
-- partition are copied by name, the generated column left to compute itself.
create or replace function ensure_event_partitions(from_day date, days integer) returns integer
language plpgsql as $$
declare
    day     date;
    part    text;
    lo      timestamptz;
    hi      timestamptz;
    columns text;
    created integer := 0;
begin
    select string_agg(quote_ident(attname), ', ' order by attnum) into columns
    from pg_attribute
    where attrelid = 'events'::regclass and attnum > 0 and not attisdropped and attgenerated = '';
    for i in 0 .. days - 1 loop
        day := from_day + i;
        part := 'events_' || to_char(day, 'YYYYMMDD');
        continue when to_regclass(quote_ident(part)) is not null;
        lo := day::timestamp at time zone 'UTC';
        hi := (day + 1)::timestamp at time zone 'UTC';
        -- serialise with concurrent callers and with inserts into the default partition
        lock table events_default in share row exclusive mode;
        continue when to_regclass(quote_ident(part)) is not null;
        execute format('create table %I (like events including defaults including constraints including generated)', part);
        execute format(
            'with moved as (delete from events_default where received_at >= %L and received_at < %L returning *)
             insert into %I (%s) select %s from moved', lo, hi, part, columns, columns);
        execute format('alter table events attach partition %I for values from (%L) to (%L)', part, lo, hi);
        created := created + 1;
    end loop;
    return created;
end;
$$;
