-- sessions: one row per visit (see "session" in the README's Words). Key (site_id, session_key).

create table sessions (
    site_id             text        not null,
    -- the client's sessionId when it sent one, else md5 of (site, visitor, activity start, day index):
    -- the same events always give the same key
    session_key         text        not null,
    visitor_key         text        not null,
    is_client_session   boolean     not null,  -- keyed by the client's sessionId
    started_at          timestamptz not null,
    ended_at            timestamptz not null,
    started_on          date        not null,  -- UTC day of started_at: the session's day
    -- start of the uninterrupted activity this session belongs to; earlier than started_at only for
    -- sessions cut at 24 hours. Incremental runs recompute a visitor from here.
    activity_started_at timestamptz not null,
    duration_s          integer     not null,
    event_count         integer     not null,
    pageview_count      integer     not null,
    entry_path          text,                  -- page of the first event
    exit_path           text,                  -- page of the last event
    referrer            text,
    referrer_domain     text,
    channel             text        not null,
    utm_source          text,
    utm_medium          text,
    utm_campaign        text,
    country             text,
    device_type         text,
    browser             text,
    os                  text,
    path_pageviews      jsonb       not null,  -- {"/path": pageviews, ...} within the session
    is_bounce           boolean     not null,  -- exactly one event
    is_bot              boolean     not null,
    primary key (site_id, session_key)
);
comment on table sessions is 'One row per session (visit). A session belongs to the UTC day it starts.';

create index sessions_day_idx on sessions (site_id, started_on);
create index sessions_visitor_idx on sessions (site_id, visitor_key, ended_at) where not is_client_session;
