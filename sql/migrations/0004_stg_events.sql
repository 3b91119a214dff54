-- stg_events: the ETL's typed, enriched copy of the log. One row per on-time event (see the
-- README's lateness rule), with the session it belongs to. Incremental runs re-read the affected
-- visitors' history from here through narrow indexes instead of re-parsing JSONB payloads.
-- Plus the small pure functions the ETL templates use to take URLs apart.

-- 'https://www.Example.com:8080/a?b' -> 'example.com'; null when `url` has no scheme://host.
create function url_host(url text) returns text
language sql immutable parallel safe return
    regexp_replace(lower(substring(url from '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^:/?#]+)')), '^www\.', '');

-- 'https://example.com/a/b?c#d' -> '/a/b'; '/' when the URL has a host but no path.
create function url_path(url text) returns text
language sql immutable parallel safe return
    case when url ~ '^[A-Za-z][A-Za-z0-9+.-]*://'
         then coalesce(nullif(substring(url from '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)'), ''), '/')
    end;

-- Percent-decoding ('%C3%A9t%C3%A9+x' -> 'été x'); the input unchanged when it is not valid UTF-8.
-- Parallel unsafe: the exception block needs a subtransaction, which parallel query cannot start.
create function url_decode(value text) returns text
language plpgsql immutable strict parallel unsafe as $$
begin
    if position('%' in value) = 0 then
        return replace(value, '+', ' ');
    end if;
    return (
        select convert_from(string_agg(
                   case when m[1] ~ '^%[0-9A-Fa-f]{2}$' then decode(substr(m[1], 2), 'hex')
                        else convert_to(m[1], 'UTF8') end, ''::bytea order by n), 'UTF8')
        from regexp_matches(replace(value, '+', ' '), '(%[0-9A-Fa-f]{2}|[^%]+|%)', 'g') with ordinality as t(m, n)
    );
exception when others then
    return value;
end;
$$;

-- The decoded value of query parameter `name` in `url`, or null. `name` is a plain word.
create function url_param(url text, name text) returns text
language sql immutable parallel unsafe return
    url_decode(nullif(substring(url from '[?&]' || name || '=([^&#]*)'), ''));

-- The acquisition channel of a session from its external referrer domain and UTM parameters:
-- email, campaign, search, social, referral or direct. First match wins, in that order.
create function referrer_channel(referrer_domain text, utm_source text, utm_medium text, utm_campaign text)
returns text
language sql immutable parallel safe return
    case
        when utm_medium ~* '^(e-?mail|newsletter)$'
          or referrer_domain ~ '^(mail\.google\.com|outlook\.live\.com|outlook\.office(365)?\.com|mail\.yahoo\.com|mail\.proton\.me|webmail\..+)$'
            then 'email'
        when coalesce(utm_source, utm_medium, utm_campaign) is not null
            then 'campaign'
        when referrer_domain ~ '(^|\.)(google\.[a-z.]+|bing\.com|duckduckgo\.com|search\.yahoo\.com|yahoo\.[a-z.]+|baidu\.com|yandex\.[a-z.]+|ecosia\.org|search\.brave\.com|qwant\.com|startpage\.com|naver\.com|seznam\.cz)$'
            then 'search'
        when referrer_domain ~ '(^|\.)(facebook\.com|fb\.com|t\.co|twitter\.com|x\.com|linkedin\.com|lnkd\.in|reddit\.com|instagram\.com|pinterest\.[a-z.]+|youtube\.com|youtu\.be|tiktok\.com|news\.ycombinator\.com|mastodon\.social|threads\.net|bsky\.app|vk\.com|weibo\.com|quora\.com)$'
            then 'social'
        when referrer_domain is not null
            then 'referral'
        else 'direct'
    end;

create table stg_events (
    event_id           uuid        primary key,
    site_id            text        not null,
    event_type         text        not null,
    occurred_at        timestamptz not null,
    received_at        timestamptz not null,
    -- visitorId, else 'anon:' || md5(daily ip hash | user agent): changes every UTC day by design
    visitor_key        text        not null,
    session_id         text,                  -- the client's sessionId, when sent
    session_key        text        not null,  -- sessions.session_key
    session_started_on date        not null,  -- the UTC day of the session's start: its day in daily tables
    is_bot             boolean     not null,  -- the session is a bot's (sessions.is_bot)
    path               text,
    referrer           text,
    referrer_domain    text,                  -- external referrers only; null for internal navigation
    utm_source         text,
    utm_medium         text,
    utm_campaign       text,
    country            text,
    ua_hash            uuid,                  -- user_agents.ua_hash
    target_url         text,                  -- clicks
    short_code         text,
    link_text          text
);
comment on table stg_events is 'One row per on-time event, typed and enriched, with its session. The ETL''s working copy of the log.';

-- Re-reading a cookieless/visitorId visitor's recent history, and a client session's events.
create index stg_events_visitor_idx on stg_events (site_id, visitor_key, occurred_at) where session_id is null;
create index stg_events_client_session_idx on stg_events (site_id, session_id) where session_id is not null;
