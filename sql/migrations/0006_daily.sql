-- Daily tables. A session and all its events count on the UTC day the session starts, so every
-- daily number adds up with the sessions table. Bot sessions are excluded.

create table daily_metrics (
    site_id                text    not null,
    day                    date    not null,
    pageviews              bigint  not null,
    events                 bigint  not null,
    visitors               bigint  not null,  -- distinct visitor keys
    sessions               bigint  not null,
    bounces                bigint  not null,
    total_duration_s       bigint  not null,  -- sum of session durations: average over any period
    bounce_rate            numeric not null,  -- bounces / sessions, 4 decimals
    avg_session_duration_s numeric not null,  -- total_duration_s / sessions, 1 decimal
    primary key (site_id, day)
);
comment on table daily_metrics is 'One row per site and UTC day with at least one non-bot session.';

create table daily_breakdown (
    site_id   text   not null,
    dimension text   not null check (dimension in ('path', 'referrer_domain', 'channel', 'country',
                                                   'device_type', 'browser', 'os', 'utm_source')),
    day       date   not null,
    value     text   not null,  -- '(none)' when the session has no value
    pageviews bigint not null,
    visitors  bigint not null,
    sessions  bigint not null,  -- for path: sessions that viewed the path
    primary key (site_id, dimension, day, value)
);
comment on table daily_breakdown is 'One row per site, dimension, UTC day and value: top-N questions in one indexed query.';
