-- Fills session_columns (migration 0050) from the sessions already stored, as the ETL's rebuild
-- writes it (`sluice etl render --rebuild session_columns` when this was written): each run after
-- this rewrites only the site-days it touches, so without this fill a database upgraded with data
-- in it would answer filtered breakdowns of its older days from no rows. With postgresql-hll only
-- (the table's visitor hashes are its hll_hash_text); without it the table stays empty and the
-- reports read `sessions`, as the ETL's template does.

do $fill$
declare
    hashagg text := current_setting('enable_hashagg');
begin
    if to_regtype('hll') is null then
        return;
    end if;
    -- (a database that ran 0050 before this existed may hold rows already: recomputed, as a
    -- rebuild would)
    delete from session_columns;
    -- (the arrays in one sort's order, as sql/etl/session_columns.sql.j2 says why)
    perform set_config('enable_hashagg', 'off', true);
    execute $insert$
    insert into session_columns (
        site_id, started_on, session_count, entry_path, exit_path, referrer_domain, channel, country, city, device_type, browser, os, utm_source, utm_medium, utm_campaign,
        pageview_count, visitor_hash, page_code, page_views, page_visitor_hash,
        page_entry_path, page_exit_path, page_referrer_domain, page_channel, page_country, page_city, page_device_type, page_browser, page_os, page_utm_source, page_utm_medium, page_utm_campaign
    )
    with

    day_sessions as not materialized (
        select
            s.site_id,
            s.started_on,
            hashtextextended(s.entry_path, 0) as entry_path,
            hashtextextended(s.exit_path, 0) as exit_path,
            hashtextextended(s.referrer_domain, 0) as referrer_domain,
            hashtextextended(s.channel, 0) as channel,
            hashtextextended(s.country, 0) as country,
            hashtextextended(s.city, 0) as city,
            hashtextextended(s.device_type, 0) as device_type,
            hashtextextended(s.browser, 0) as browser,
            hashtextextended(s.os, 0) as os,
            hashtextextended(s.utm_source, 0) as utm_source,
            hashtextextended(s.utm_medium, 0) as utm_medium,
            hashtextextended(s.utm_campaign, 0) as utm_campaign,
            s.pageview_count,
            -- (hll_hashval has a binary cast from bigint only: the text form is the same number)
            hll_hash_text(s.visitor_key)::text::bigint as visitor_hash,
            s.path_pageviews
        from sessions as s
        where not s.is_bot
        order by s.site_id, s.started_on, s.session_key collate "C"
    ),

    columns as (
        select
            site_id,
            started_on,
            count(*)::integer as session_count,
            array_agg(entry_path) as entry_path,
            array_agg(exit_path) as exit_path,
            array_agg(referrer_domain) as referrer_domain,
            array_agg(channel) as channel,
            array_agg(country) as country,
            array_agg(city) as city,
            array_agg(device_type) as device_type,
            array_agg(browser) as browser,
            array_agg(os) as os,
            array_agg(utm_source) as utm_source,
            array_agg(utm_medium) as utm_medium,
            array_agg(utm_campaign) as utm_campaign,
            array_agg(pageview_count) as pageview_count,
            array_agg(visitor_hash) as visitor_hash
        from day_sessions
        group by site_id, started_on
    ),

    pages as (
        select
            s.site_id,
            s.started_on,
            array_agg(hashtextextended(p.key, 0)) as page_code,
            array_agg(p.value::integer) as page_views,
            array_agg(s.visitor_hash) as page_visitor_hash,
            array_agg(s.entry_path) as page_entry_path,
            array_agg(s.exit_path) as page_exit_path,
            array_agg(s.referrer_domain) as page_referrer_domain,
            array_agg(s.channel) as page_channel,
            array_agg(s.country) as page_country,
            array_agg(s.city) as page_city,
            array_agg(s.device_type) as page_device_type,
            array_agg(s.browser) as page_browser,
            array_agg(s.os) as page_os,
            array_agg(s.utm_source) as page_utm_source,
            array_agg(s.utm_medium) as page_utm_medium,
            array_agg(s.utm_campaign) as page_utm_campaign
        from day_sessions as s
        cross join lateral jsonb_each_text(s.path_pageviews) as p
        group by s.site_id, s.started_on
    )

    select
        c.site_id, c.started_on, c.session_count, c.entry_path, c.exit_path, c.referrer_domain, c.channel, c.country, c.city, c.device_type, c.browser, c.os, c.utm_source, c.utm_medium, c.utm_campaign,
        c.pageview_count, c.visitor_hash,
        coalesce(p.page_code, '{}'), coalesce(p.page_views, '{}'), coalesce(p.page_visitor_hash, '{}'),
        coalesce(p.page_entry_path, '{}'), coalesce(p.page_exit_path, '{}'), coalesce(p.page_referrer_domain, '{}'), coalesce(p.page_channel, '{}'), coalesce(p.page_country, '{}'), coalesce(p.page_city, '{}'), coalesce(p.page_device_type, '{}'), coalesce(p.page_browser, '{}'), coalesce(p.page_os, '{}'), coalesce(p.page_utm_source, '{}'), coalesce(p.page_utm_medium, '{}'), coalesce(p.page_utm_campaign, '{}')
    from columns as c
    left join pages as p on p.site_id = c.site_id and p.started_on = c.started_on
    $insert$;
    perform set_config('enable_hashagg', hashagg, true);
end
$fill$;
