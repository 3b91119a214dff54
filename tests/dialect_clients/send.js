// Sends track, page and identify with the real Node.js clients of Segment, RudderStack and PostHog
// to a running Sluice, flushes each, and exits non-zero if any client reported an error.
// Usage: node send.js URL '{"segment": KEY, "rudderstack": KEY, "posthog": KEY}'
// The clients come from the cache scripts/ensure-system-deps.sh installs (NODE_PATH).
'use strict';

const { Analytics } = require('@segment/analytics-node');
const RudderAnalytics = require('@rudderstack/rudder-sdk-node');
const { PostHog } = require('posthog-node');

const [url, keysJson] = process.argv.slice(2);
const keys = JSON.parse(keysJson);
const errors = [];

// The end user, as a server names them: the address gives the country (8.8.8.8 is US).
const context = {
  ip: '8.8.8.8',
  userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
  page: { url: 'https://shop.example/pricing?utm_source=news', path: '/pricing', title: 'Pricing' },
  campaign: { source: 'news', medium: 'email', name: 'spring', term: 'plans', content: 'banner' },
};

async function segmentLike(name, client, flush) {
  const anonymousId = `${name}-anon`;
  client.page({ anonymousId, name: 'Pricing', properties: { section: 'top' }, context });
  client.track({ anonymousId, event: 'Plan Chosen', properties: { plan: 'pro', seats: 3 }, context });
  client.identify({ anonymousId, userId: `${name}-user`, traits: { email: 'a@shop.example' }, context });
  await flush();
}

async function main() {
  const segment = new Analytics({ writeKey: keys.segment, host: url, flushAt: 10, maxRetries: 0 });
  segment.on('error', (err) => errors.push(`segment: ${err && (err.reason || err.message || err)}`));
  await segmentLike('segment-node', segment, () => segment.closeAndFlush());

  const rudder = new RudderAnalytics(keys.rudderstack, { dataPlaneUrl: url, flushAt: 10, retryCount: 0, logLevel: 'error' });
  try {
    await segmentLike('rudder-node', rudder, () => rudder.flush());
  } catch (err) {
    errors.push(`rudderstack: ${err && err.message}`);
  }

  const posthog = new PostHog(keys.posthog, { host: url, flushAt: 10, fetchRetryCount: 0, disableGeoip: true });
  posthog.on('error', (err) => errors.push(`posthog: ${err && err.message}`));
  const distinctId = 'posthog-node-anon';
  const properties = { $ip: '8.8.8.8', utm_source: 'news', utm_medium: 'email', utm_campaign: 'spring' };
  posthog.capture({ distinctId, event: '$pageview', properties: { ...properties, $current_url: 'https://shop.example/pricing', $pathname: '/pricing' } });
  posthog.capture({ distinctId, event: 'Plan Chosen', properties: { ...properties, plan: 'pro', seats: 3 } });
  posthog.identify({ distinctId: 'posthog-node-user', properties: { $anon_distinct_id: distinctId, $ip: '8.8.8.8', email: 'a@shop.example' } });
  await posthog.shutdown();

  if (errors.length) {
    console.error(errors.join('\n'));
    process.exit(1);
  }
  console.log('sent');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
