-- What SQL analysts get: every table they read says what it holds (`comment on`, shown by psql's
-- \d+ and generated into the README's "Tables for analysts"), and one read-only role,
-- sluice_analyst, that `sluice grant-analyst ROLE` gives to their login roles.
--
-- RULE FOR EVERY LATER MIGRATION:
--   * an internal table must revoke select from sluice_analyst (`revoke all on <table> from
--     sluice_analyst;` in the migration that creates it) and be listed in INTERNAL_TABLES in
--     sluice/analysts.py: default privileges (below) make every new table readable by analysts;
--   * any other table gets a `comment on table` and a `comment on column` for each column, and a
--     section in the README (tests/test_schema_docs.py fails without them; `sluice schema-docs
--     --readme README.md` writes the column tables).
-- Default privileges belong to the role that creates the table: run every migration as one role.
--
-- sluice_analyst reads every table of this schema but the internal ones, and nothing else: no
-- writes, no DDL, and not the internal tables (daily_salts would let an analyst re-hash every
-- address and reverse ip_hash; event_ids, etl_state and schema_migrations are bookkeeping).

-- Roles are cluster-wide: every database and schema of the server shares this one, so it is made
-- only when missing. Another database's migrator may make it between the check and the create.
do $$
begin
    if not exists (select from pg_roles where rolname = 'sluice_analyst') then
        create role sluice_analyst nologin;
    end if;
exception
    when duplicate_object or unique_violation then
        null;
    when insufficient_privilege then
        raise exception 'creating the role sluice_analyst needs the CREATEROLE privilege'
            using hint = 'have a superuser run "create role sluice_analyst nologin", then migrate again';
end;
$$;

-- The schema's name is configurable (SLUICE_SCHEMA); migrations run with search_path set to it.
do $$
begin
    execute format('grant usage on schema %I to sluice_analyst', current_schema());
    -- partitions of events included: the same rows as through the parent, as for the partitions
    -- created later under the default privileges
    execute format('grant select on all tables in schema %I to sluice_analyst', current_schema());
    execute format('alter default privileges in schema %I grant select on tables to sluice_analyst',
                   current_schema());
end;
$$;

revoke all on daily_salts, event_ids, etl_state, schema_migrations from sluice_analyst;

comment on table daily_salts is 'Internal: one random salt per UTC day for hashing client IPs; kept from analysts.';
comment on table event_ids is 'Internal: every stored event_id once, so a retried event is stored once; kept from analysts.';
comment on table etl_state is 'Internal: the ETL watermark (a single row); kept from analysts.';
comment on table schema_migrations is 'Internal: the migrations applied; kept from analysts.';

-- events -----------------------------------------------------------------------------------------

comment on table events is 'The raw log: one row per accepted event, as received, bots and late events included. Partitioned by the UTC day of received_at (events_YYYYMMDD); retention drops old partitions.';
comment on column events.event_id is 'The client''s eventId, else a UUID version 7 made by the collector; stored once per id.';
comment on column events.site_id is 'siteId: the site that sent the event.';
comment on column events.event_type is 'eventType as sent: pageview, click, custom or any other name.';
comment on column events.occurred_at is 'When it happened: the client''s timestamp corrected for clock skew (sentAt); received_at when it sent none, or when the corrected time is more than SLUICE_MAX_FUTURE_SKEW seconds ahead of it.';
comment on column events.client_timestamp is 'The client''s timestamp exactly as sent; null when it sent none.';
comment on column events.received_at is 'When the collector received the event (the server''s clock).';
comment on column events.visitor_id is 'The client''s visitorId; null in cookieless mode.';
comment on column events.session_id is 'The client''s sessionId; null when it sent none.';
comment on column events.ip_hash is 'BLAKE2b-128 (hex) of the client''s IP address keyed with that UTC day''s salt; the raw address is never stored, and once the salt is deleted the hash cannot be linked to an address or another day.';
comment on column events.country is 'ISO 3166-1 alpha-2 code of the client''s country; null for private and reserved addresses.';
comment on column events.user_agent is 'The User-Agent header (at most 1024 characters).';
comment on column events.payload is 'The whole event as sent (JSON), fields without a column included: url, path, referrer, title, props, attribution, ...';
comment on column events.txid is 'Id of the inserting transaction; the ETL''s watermark compares against it.';

-- etl_runs ---------------------------------------------------------------------------------------

comment on table etl_runs is 'One row per ETL run: an incremental run, a rebuild, a one-day recompute or a retention cleanup.';
comment on column etl_runs.run_id is 'The run''s number, increasing.';
comment on column etl_runs.kind is 'incremental, rebuild, daily (one day''s daily tables recomputed) or cleanup (retention).';
comment on column etl_runs.status is 'running, succeeded, failed, or abandoned (its process ended mid-run; nothing it did was kept).';
comment on column etl_runs.started_at is 'When the run started.';
comment on column etl_runs.finished_at is 'When it ended; null while running.';
comment on column etl_runs.watermark_from is 'The batch''s lower bound: it read the events with watermark_from <= txid < watermark_to.';
comment on column etl_runs.watermark_to is 'The batch''s upper bound (exclusive); the next run starts there.';
comment on column etl_runs.events_processed is 'On-time events the run took into the ETL tables.';
comment on column etl_runs.events_too_late is 'Events of the batch left out: arrived more than SLUICE_LATENESS_DAYS after they happened, or a second copy of an event_id.';
comment on column etl_runs.rows_written is 'Rows inserted or replaced per table, as JSON: {"sessions": 12, ...}.';
comment on column etl_runs.error is 'Why the run failed; null otherwise.';

-- user_agents ------------------------------------------------------------------------------------

comment on table user_agents is 'One row per distinct User-Agent string, parsed once with ua-parser.';
comment on column user_agents.ua_hash is 'md5(user_agent)::uuid: the key stg_events.ua_hash joins on.';
comment on column user_agents.user_agent is 'The User-Agent string.';
comment on column user_agents.browser is 'Browser family: Chrome, Firefox, Safari, ... or Other.';
comment on column user_agents.browser_version is 'The browser''s major version, e.g. 120; null when unknown.';
comment on column user_agents.os is 'Operating system family: Windows, iOS, Linux, ... or Other.';
comment on column user_agents.device_type is 'mobile, tablet or desktop.';
comment on column user_agents.is_bot is 'A crawler or script: ua-parser''s Spider device, or a crawler or HTTP-library pattern (etl/enrich.py).';

-- stg_events -------------------------------------------------------------------------------------

comment on table stg_events is 'One row per on-time event, typed and enriched, with its session: the ETL''s working copy of the log, for per-event questions without parsing JSON. Kept as long as the raw log.';
comment on column stg_events.event_id is 'events.event_id.';
comment on column stg_events.site_id is 'The site.';
comment on column stg_events.event_type is 'pageview, click, custom, ...';
comment on column stg_events.occurred_at is 'When it happened (events.occurred_at).';
comment on column stg_events.received_at is 'When the collector received it.';
comment on column stg_events.visitor_key is 'The visitor: visitorId, else anon: followed by an md5 of the day''s IP hash and the user agent (changes every UTC day by design).';
comment on column stg_events.session_id is 'The client''s sessionId; null when it sent none.';
comment on column stg_events.session_key is 'The event''s session: sessions.session_key.';
comment on column stg_events.session_started_on is 'UTC day its session started: the day it counts on in the daily tables.';
comment on column stg_events.is_bot is 'Its session is a bot''s (sessions.is_bot).';
comment on column stg_events.path is 'The page''s path: the event''s path, else the path of its url.';
comment on column stg_events.referrer is 'The referrer as sent.';
comment on column stg_events.referrer_domain is 'The referrer''s host without www.; null when there is none or it is the page''s own host.';
comment on column stg_events.utm_source is 'utm_source from attribution.utmParams, else from the URL''s query string.';
comment on column stg_events.utm_medium is 'utm_medium, found as utm_source is.';
comment on column stg_events.utm_campaign is 'utm_campaign, found as utm_source is.';
comment on column stg_events.country is 'ISO 3166-1 alpha-2 country; null when unknown.';
comment on column stg_events.ua_hash is 'The user agent: user_agents.ua_hash; null when the event had none.';
comment on column stg_events.target_url is 'A click''s target URL (target).';
comment on column stg_events.short_code is 'A short-link redirect''s shortCode.';
comment on column stg_events.link_text is 'A click''s link text (text).';

-- sessions ---------------------------------------------------------------------------------------

comment on table sessions is 'One row per session (visit): a visitor''s events without a 30-minute gap, cut at 24 hours, or the events carrying one client sessionId. A session belongs to the UTC day it starts.';
comment on column sessions.site_id is 'The site.';
comment on column sessions.session_key is 'The session: the client''s sessionId, else an md5 of (site, visitor, start of the activity, 24-hour slice); the same events always give the same key.';
comment on column sessions.visitor_key is 'The visitor: visitorId, else anon: followed by an md5 of the day''s IP hash and the user agent.';
comment on column sessions.is_client_session is 'Keyed by the client''s sessionId.';
comment on column sessions.started_at is 'Time of the first event.';
comment on column sessions.ended_at is 'Time of the last event.';
comment on column sessions.started_on is 'UTC day of started_at: the session''s day in the daily tables.';
comment on column sessions.activity_started_at is 'Start of the uninterrupted activity; earlier than started_at only for sessions cut at 24 hours.';
comment on column sessions.duration_s is 'Whole seconds from started_at to ended_at.';
comment on column sessions.event_count is 'Events in the session.';
comment on column sessions.pageview_count is 'Events of type pageview.';
comment on column sessions.entry_path is 'Page of the first event.';
comment on column sessions.exit_path is 'Page of the last event.';
comment on column sessions.referrer is 'The first event''s referrer.';
comment on column sessions.referrer_domain is 'Its host without www.; null when direct or internal.';
comment on column sessions.channel is 'email, campaign, search, social, referral or direct: the first that matches, in that order (function referrer_channel).';
comment on column sessions.utm_source is 'The first event''s utm_source (attribution.utmParams, else its URL''s query string).';
comment on column sessions.utm_medium is 'The first event''s utm_medium.';
comment on column sessions.utm_campaign is 'The first event''s utm_campaign.';
comment on column sessions.country is 'The first event''s country (ISO 3166-1 alpha-2).';
comment on column sessions.device_type is 'The first event''s device: mobile, tablet or desktop.';
comment on column sessions.browser is 'The first event''s browser family.';
comment on column sessions.os is 'The first event''s operating system family.';
comment on column sessions.path_pageviews is 'Pageviews per page within the session, as JSON: {"/path": pageviews, ...}.';
comment on column sessions.is_bounce is 'Exactly one event.';
comment on column sessions.is_bot is 'Any event came from a bot user agent, or had no user agent at all.';

-- daily_metrics ----------------------------------------------------------------------------------

comment on table daily_metrics is 'One row per site and UTC day with at least one non-bot session. A session and all its events count on the day it started; bots are left out.';
comment on column daily_metrics.site_id is 'The site.';
comment on column daily_metrics.day is 'The UTC day the sessions started.';
comment on column daily_metrics.pageviews is 'Pageviews of the day''s sessions.';
comment on column daily_metrics.events is 'Events of the day''s sessions.';
comment on column daily_metrics.visitors is 'Distinct visitor keys; does not add up across days.';
comment on column daily_metrics.sessions is 'Sessions that started that day.';
comment on column daily_metrics.bounces is 'Sessions of exactly one event.';
comment on column daily_metrics.total_duration_s is 'Sum of the sessions'' durations: over several days, sum it and divide by the summed sessions.';
comment on column daily_metrics.bounce_rate is 'bounces / sessions, 4 decimals.';
comment on column daily_metrics.avg_session_duration_s is 'total_duration_s / sessions, 1 decimal.';

-- daily_breakdown --------------------------------------------------------------------------------

comment on table daily_breakdown is 'One row per site, dimension, UTC day and value, bots left out: top-N questions in one indexed query.';
comment on column daily_breakdown.site_id is 'The site.';
comment on column daily_breakdown.dimension is 'path, referrer_domain, channel, country, device_type, browser, os or utm_source.';
comment on column daily_breakdown.day is 'The UTC day the sessions started.';
comment on column daily_breakdown.value is 'The dimension''s value: a page for path, else the session''s (its first event''s); (none) when it had none.';
comment on column daily_breakdown.pageviews is 'For path: pageviews of that page; else the sessions'' pageviews.';
comment on column daily_breakdown.visitors is 'Distinct visitors (of those sessions).';
comment on column daily_breakdown.sessions is 'Sessions with that value; for path: sessions that viewed the page.';

-- clicks -----------------------------------------------------------------------------------------

comment on table clicks is 'One row per click event: an event of type click, or any event carrying a shortCode (short-link redirects). Bots included (is_bot).';
comment on column clicks.event_id is 'The click''s event (stg_events.event_id).';
comment on column clicks.site_id is 'The site.';
comment on column clicks.occurred_at is 'When the click happened.';
comment on column clicks.session_key is 'Its session: joins sessions (site_id, session_key).';
comment on column clicks.visitor_key is 'The visitor (sessions.visitor_key).';
comment on column clicks.source_path is 'The page clicked on.';
comment on column clicks.target_url is 'The link''s target URL.';
comment on column clicks.target_domain is 'The target''s host without www.';
comment on column clicks.short_code is 'The short link''s code (shortCode).';
comment on column clicks.link_text is 'The link''s text.';
comment on column clicks.referrer is 'The click event''s referrer.';
comment on column clicks.country is 'ISO 3166-1 alpha-2 country.';
comment on column clicks.device_type is 'mobile, tablet or desktop.';
comment on column clicks.browser is 'Browser family.';
comment on column clicks.is_bot is 'Its session is a bot''s.';

-- hourly_click_counts ----------------------------------------------------------------------------

comment on table hourly_click_counts is 'One row per site, UTC hour, target URL and short code; bots left out.';
comment on column hourly_click_counts.site_id is 'The site.';
comment on column hourly_click_counts.hour is 'The UTC hour the clicks happened in (its start).';
comment on column hourly_click_counts.target_url is 'The target URL; empty when the clicks had none.';
comment on column hourly_click_counts.short_code is 'The short code; empty when the clicks had none.';
comment on column hourly_click_counts.target_domain is 'The target''s host without www.';
comment on column hourly_click_counts.clicks is 'Clicks.';
comment on column hourly_click_counts.visitors is 'Distinct visitors within the hour.';
