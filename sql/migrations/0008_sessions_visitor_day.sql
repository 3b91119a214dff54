-- Every session of one visitor, by day, client sessions included: an incremental run recounts the
-- daily breakdown of exactly the visitor-days it changed (sql/etl/daily_breakdown.sql.j2), and
-- finds a cookieless/visitorId visitor's recent sessions (sql/etl/sessionized_events.sql.j2) with
-- the same index, so it replaces sessions_visitor_idx.

drop index sessions_visitor_idx;

create index sessions_visitor_day_idx on sessions (site_id, visitor_key, started_on);
