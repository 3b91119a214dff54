-- A visitor's clicks by time: an incremental run moves each touched hourly_click_counts row by the
-- difference its clicks made (sql/etl/hourly_click_counts.sql.j2), and asks, for each visitor whose
-- clicks it rewrote, whether that visitor has other clicks in the same hour and group. Keys in byte
-- order (collate "C") and the nearly unique key first, as stg_events' (migration 0009).

create index clicks_visitor_idx on clicks (visitor_key collate "C", site_id collate "C", occurred_at);
