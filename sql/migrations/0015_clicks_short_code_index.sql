-- Every click of one short code, by time: /analytics/stats/{short_code}.

create index clicks_short_code_idx on clicks (short_code, occurred_at) where short_code is not null;
