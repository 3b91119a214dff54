-- Events a server-side source sent on behalf of its end users (an ingest token: collector/sources.py,
-- README "Sending from servers"). One that names no end user's User-Agent is not a bot for want of
-- one. The ETL decides that from the payload when it first reads an event, and again for events it
-- re-reads from stg_events (which keep no payload): so stg_events keeps the fact.

alter table stg_events add column is_server boolean not null default false;

comment on column stg_events.is_server is 'Sent by a server-side source with an ingest token, on behalf of its end user (payload context.source = ''server''); such an event without the end user''s User-Agent is not counted as a bot.';
