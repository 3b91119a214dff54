-- Which known user each visitor turned out to be: an identify (Segment, RudderStack, PostHog's
-- $identify, Umami's identify) carries the anonymous visitor and the userId together, and so does
-- every later event of a user who is logged in. README "Who a visitor is: identify".
-- A view over stg_events (user_id: migration 0018), so it is always as current as the ETL.

create view visitor_users as
select
    site_id,
    visitor_key,
    user_id,
    min(occurred_at) as first_seen_at,
    max(occurred_at) as last_seen_at,
    count(*)         as events
from stg_events
where user_id is not null
group by site_id, visitor_key, user_id;

comment on view visitor_users is 'One row per site, visitor and the user id its events named: the link an identify makes between an anonymous visitor and a known user.';
comment on column visitor_users.site_id is 'The site.';
comment on column visitor_users.visitor_key is 'The visitor (stg_events.visitor_key: anonymousId, else userId, for the dialects'' events).';
comment on column visitor_users.user_id is 'The user id (userId; PostHog''s identified distinct_id; Umami''s id) events of that visitor named.';
comment on column visitor_users.first_seen_at is 'The first event of the visitor naming that user.';
comment on column visitor_users.last_seen_at is 'The last such event.';
comment on column visitor_users.events is 'How many of the visitor''s events named that user.';
