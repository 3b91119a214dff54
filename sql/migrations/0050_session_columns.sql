-- session_columns: an acceleration table for the report API's filtered breakdowns
-- (`filter=DIMENSION:VALUE` on /breakdown/{dimension}), which read every session of the period from
-- `sessions`: ~650,000 wide heap rows for the big site over 30 days, interleaved with the other
-- sites' on disk, 0.5-1.1 s at 10M events (bench/README.md "Filtered breakdowns"). Here one row
-- holds one site's day of non-bot sessions as parallel arrays, ordered by session_key (C collation,
-- so an incremental run writes the same row as a rebuild): each array is TOASTed (compressed) on its
-- own, so a query reads ~30 rows and detoasts only the arrays it unnests. The pages are flattened
-- (one element per session and page) with their session's visitor and dimensions repeated beside
-- them, so that a filtered `path` breakdown unnests four page arrays rather than joining them to the
-- sessions' (0.59-0.80 s against 0.30 s, device_type:mobile over 30 days at 10M events). Values are 64-bit codes,
-- hashtextextended(value, 0), decoded by the report from the same period's daily_breakdown values;
-- null stays null ('(none)'). Analysts should read `sessions`: this table only re-encodes it.
-- Filled only with postgresql-hll (migration 0013): its visitor hashes are hll_hash_text's; empty
-- without the extension (the reports then read `sessions`).

create table session_columns (
    site_id         text     not null,
    started_on      date     not null,
    session_count   integer  not null,
    entry_path      bigint[] not null,
    exit_path       bigint[] not null,
    referrer_domain bigint[] not null,
    channel         bigint[] not null,
    country         bigint[] not null,
    city            bigint[] not null,
    device_type     bigint[] not null,
    browser         bigint[] not null,
    os              bigint[] not null,
    utm_source      bigint[] not null,
    utm_medium      bigint[] not null,
    utm_campaign    bigint[] not null,
    pageview_count  integer[] not null,
    visitor_hash    bigint[] not null,
    page_code       bigint[] not null,
    page_views      integer[] not null,
    page_visitor_hash bigint[] not null,
    page_entry_path      bigint[] not null,
    page_exit_path       bigint[] not null,
    page_referrer_domain bigint[] not null,
    page_channel         bigint[] not null,
    page_country         bigint[] not null,
    page_city            bigint[] not null,
    page_device_type     bigint[] not null,
    page_browser         bigint[] not null,
    page_os              bigint[] not null,
    page_utm_source      bigint[] not null,
    page_utm_medium      bigint[] not null,
    page_utm_campaign    bigint[] not null,
    primary key (site_id, started_on)
);
comment on table session_columns is
    'Acceleration table for the report API''s filtered breakdowns: one row per site and UTC day, that day''s non-bot sessions as parallel arrays (element i of every session array is the i-th session by session_key). Values are hashtextextended(value, 0) codes. Read `sessions` for analysis. Empty without postgresql-hll.';
comment on column session_columns.site_id is 'The site.';
comment on column session_columns.started_on is 'The UTC day the sessions started (sessions.started_on).';
comment on column session_columns.session_count is 'The number of non-bot sessions of the day: the length of every session array.';
comment on column session_columns.entry_path is 'Per session, hashtextextended(sessions.entry_path, 0); null when it had none.';
comment on column session_columns.exit_path is 'Per session, hashtextextended(sessions.exit_path, 0); null when it had none.';
comment on column session_columns.referrer_domain is 'Per session, hashtextextended(sessions.referrer_domain, 0); null when it had none.';
comment on column session_columns.channel is 'Per session, hashtextextended(sessions.channel, 0).';
comment on column session_columns.country is 'Per session, hashtextextended(sessions.country, 0); null when it had none.';
comment on column session_columns.city is 'Per session, hashtextextended(sessions.city, 0); null when it had none.';
comment on column session_columns.device_type is 'Per session, hashtextextended(sessions.device_type, 0); null when it had none.';
comment on column session_columns.browser is 'Per session, hashtextextended(sessions.browser, 0); null when it had none.';
comment on column session_columns.os is 'Per session, hashtextextended(sessions.os, 0); null when it had none.';
comment on column session_columns.utm_source is 'Per session, hashtextextended(sessions.utm_source, 0); null when it had none.';
comment on column session_columns.utm_medium is 'Per session, hashtextextended(sessions.utm_medium, 0); null when it had none.';
comment on column session_columns.utm_campaign is 'Per session, hashtextextended(sessions.utm_campaign, 0); null when it had none.';
comment on column session_columns.pageview_count is 'Per session, sessions.pageview_count.';
comment on column session_columns.visitor_hash is
    'Per session, hll_hash_text(sessions.visitor_key) as bigint: hll_add_agg(visitor_hash::hll_hashval, 14) is the sketch of its visitors.';
comment on column session_columns.page_code is
    'Per page a session viewed (one element per key of sessions.path_pageviews, by session as above, then in the order jsonb keeps the keys: shorter first, then bytewise): hashtextextended(path, 0). Every page_ array has these elements.';
comment on column session_columns.page_views is 'Per page element: the session''s pageviews of the page (the value of sessions.path_pageviews).';
comment on column session_columns.page_visitor_hash is 'Per page element: its session''s visitor_hash.';
comment on column session_columns.page_entry_path is 'Per page element: its session''s entry_path code (as the column entry_path).';
comment on column session_columns.page_exit_path is 'Per page element: its session''s exit_path code (as the column exit_path).';
comment on column session_columns.page_referrer_domain is 'Per page element: its session''s referrer_domain code (as the column referrer_domain).';
comment on column session_columns.page_channel is 'Per page element: its session''s channel code (as the column channel).';
comment on column session_columns.page_country is 'Per page element: its session''s country code (as the column country).';
comment on column session_columns.page_city is 'Per page element: its session''s city code (as the column city).';
comment on column session_columns.page_device_type is 'Per page element: its session''s device_type code (as the column device_type).';
comment on column session_columns.page_browser is 'Per page element: its session''s browser code (as the column browser).';
comment on column session_columns.page_os is 'Per page element: its session''s os code (as the column os).';
comment on column session_columns.page_utm_source is 'Per page element: its session''s utm_source code (as the column utm_source).';
comment on column session_columns.page_utm_medium is 'Per page element: its session''s utm_medium code (as the column utm_medium).';
comment on column session_columns.page_utm_campaign is 'Per page element: its session''s utm_campaign code (as the column utm_campaign).';
