-- Every session of one visitor on one day, client sessions included: an incremental run recounts
-- the daily breakdown of exactly the visitor-days it changed (sql/etl/daily_breakdown.sql.j2).

create index sessions_visitor_day_idx on sessions (site_id, visitor_key, started_on);
