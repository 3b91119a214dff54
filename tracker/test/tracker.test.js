'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { load, link, Storage, SOURCE } = require('../test-support/fake-window.js')

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const MINUTE = 60 * 1000

test.describe('page views', () => {
  test('one on load, with the page, the device and the UTM parameters', () => {
    const page = load({
      url: 'https://example.com/pricing?utm_source=news&utm_medium=email&utm_campaign=spring&x=1#plans',
      referrer: 'https://search.example/?q=sluice',
      title: 'Pricing',
    })
    page.tick()
    assert.equal(page.sent.length, 1)
    const [{ via, url, body, type, init }] = page.sent
    assert.equal(via, 'fetch') // which, unlike sendBeacon, says whether the collector took it
    assert.equal(type, 'string') // a string body is sent as text/plain: no CORS preflight
    assert.deepEqual(JSON.parse(JSON.stringify({ ...init, body: 'B' })), {
      method: 'POST',
      body: 'B',
      keepalive: true, // outlives the page
      credentials: 'omit',
      headers: { 'Content-Type': 'text/plain' },
    })
    assert.equal(url, 'https://stats.example.net/collect')
    assert.equal(body.sentAt, '2026-01-15T12:00:00.000Z')
    assert.equal(body.events.length, 1)
    const event = body.events[0]
    assert.match(event.eventId, UUID_V7)
    // version 7: the event's time in milliseconds, then random bits
    assert.equal(parseInt(event.eventId.replace(/-/g, '').slice(0, 12), 16), Date.parse(body.sentAt))
    assert.match(event.visitorId, UUID)
    assert.match(event.sessionId, UUID)
    assert.deepEqual(
      { ...event, eventId: 'E', visitorId: 'V', sessionId: 'S', timeZone: 'TZ' },
      {
        eventType: 'pageview',
        siteId: 'example-com',
        eventId: 'E',
        timestamp: '2026-01-15T12:00:00.000Z',
        url: 'https://example.com/pricing?utm_source=news&utm_medium=email&utm_campaign=spring&x=1#plans',
        path: '/pricing',
        referrer: 'https://search.example/?q=sluice',
        title: 'Pricing',
        screen: { width: 1280, height: 720 },
        language: 'en-GB',
        timeZone: 'TZ',
        visitorId: 'V',
        sessionId: 'S',
        attribution: { utmParams: { utm_source: 'news', utm_medium: 'email', utm_campaign: 'spring' } },
      }
    )
    assert.equal(typeof event.timeZone, 'string')
  })

  test('data-endpoint overrides the collector address; the script tag is found without currentScript', () => {
    const page = load({ attrs: { endpoint: 'https://example.com/api/event' }, noCurrentScript: true })
    page.tick()
    assert.equal(page.sent[0].url, 'https://example.com/api/event')
  })

  test('pushState and replaceState to a new URL are page views; the previous page is the referrer', () => {
    const page = load({ url: 'https://example.com/', referrer: 'https://ref.example/' })
    page.tick()
    page.history.pushState({}, '', '/docs')
    page.document.title = 'Docs' // routers set the title after pushState
    page.tick()
    page.history.replaceState({}, '', '/docs/install')
    page.tick()
    const views = page.events().filter((e) => e.eventType === 'pageview')
    assert.deepEqual(
      views.map((e) => [e.path, e.referrer, e.title]),
      [
        ['/', 'https://ref.example/', 'Home'],
        ['/docs', 'https://example.com/', 'Docs'],
        ['/docs/install', 'https://example.com/docs', 'Docs'],
      ]
    )
  })

  test('a push then a replace in one tick (a redirect) is one page view of where the user ends up', () => {
    const page = load()
    page.tick()
    page.history.pushState({}, '', '/old')
    page.history.replaceState({}, '', '/new')
    page.tick()
    assert.deepEqual(
      page.events().map((e) => e.path),
      ['/', '/new']
    )
  })

  test('replaceState of state only, and hash changes, are not page views by default', () => {
    const page = load()
    page.tick()
    page.history.replaceState({ scroll: 10 }, '')
    page.history.pushState({}, '', '#section')
    page.window.dispatch('popstate')
    page.window.dispatch('hashchange')
    page.tick()
    assert.equal(page.events().length, 1)
  })

  test('popstate (back/forward) to another URL is a page view', () => {
    const page = load({ url: 'https://example.com/a' })
    page.tick()
    page.location.pathname = '/b' // what the browser did before firing popstate
    page.location.href = 'https://example.com/b'
    page.window.dispatch('popstate')
    page.tick()
    assert.deepEqual(
      page.events().map((e) => e.path),
      ['/a', '/b']
    )
  })

  test('with data-hash, hash changes are page views and the path carries the hash', () => {
    const page = load({ url: 'https://example.com/app#/inbox', attrs: { hash: '' } })
    page.tick()
    page.history.pushState({}, '', '#/settings') // a hash router may also just set location.hash
    page.window.dispatch('hashchange')
    page.tick()
    assert.deepEqual(
      page.events().map((e) => e.path),
      ['/app#/inbox', '/app#/settings']
    )
  })

  test('a page restored from the back/forward cache is a new page view', () => {
    const page = load()
    page.window.dispatch('pagehide', { persisted: true })
    page.window.dispatch('pageshow', { persisted: false }) // an ordinary load: nothing more
    page.window.dispatch('pageshow', { persisted: true })
    page.tick()
    assert.deepEqual(
      page.events().map((e) => e.eventType),
      ['pageview', 'pageview']
    )
  })

  test('sluice.pageview() sends one even when the URL is unchanged', () => {
    const page = load()
    page.window.sluice.pageview()
    page.tick()
    assert.deepEqual(
      page.events().map((e) => e.eventType),
      ['pageview', 'pageview']
    )
  })
})

test.describe('clicks', () => {
  test('an outbound link is a click with its target and text', () => {
    const page = load()
    page.tick()
    page.click(link('https://partner.example/offer?id=7', { text: '  See the offer  ' }))
    page.tick()
    const click = page.events()[1]
    assert.equal(click.eventType, 'click')
    assert.equal(click.target, 'https://partner.example/offer?id=7')
    assert.equal(click.text, 'See the offer')
    assert.equal(click.path, '/')
    assert.equal(click.props, undefined)
  })

  test('an internal link is not a click unless marked data-sluice-click, whose value is a label', () => {
    const page = load()
    page.tick()
    page.click(link('https://example.com/about'))
    page.click(link('https://example.com/signup', { text: 'Sign up', attrs: { 'data-sluice-click': 'hero-cta' } }))
    page.click(link('https://example.com/terms', { text: 'Terms', attrs: { 'data-sluice-click': '' } }))
    page.tick()
    const clicks = page.events().filter((e) => e.eventType === 'click')
    assert.deepEqual(
      clicks.map((e) => [e.target, e.text, e.props]),
      [
        ['https://example.com/signup', 'Sign up', { label: 'hero-cta' }],
        ['https://example.com/terms', 'Terms', undefined],
      ]
    )
  })

  test('data-auto-clicks="false" keeps only marked links', () => {
    const page = load({ attrs: { 'auto-clicks': 'false' } })
    page.tick()
    page.click(link('https://partner.example/'))
    page.click(link('https://partner.example/marked', { attrs: { 'data-sluice-click': '' } }))
    page.tick()
    assert.deepEqual(
      page.events().slice(1).map((e) => e.target),
      ['https://partner.example/marked']
    )
  })

  test('a click outside any link, a right-button auxclick and a mailto: link are ignored', () => {
    const page = load()
    page.tick()
    page.click({ closest: () => null })
    page.document.dispatch('auxclick', { target: link('https://partner.example/'), button: 2 })
    page.click(link('mailto:someone@example.com'))
    page.document.dispatch('auxclick', { target: link('https://partner.example/middle'), button: 1 })
    page.tick()
    assert.deepEqual(
      page.events().slice(1).map((e) => e.target),
      ['https://partner.example/middle']
    )
  })
})

test.describe('custom events and the pre-load queue', () => {
  test('sluice.track(name, props) is a custom event with eventName and props', () => {
    const page = load()
    page.window.sluice.track('signup', { plan: 'pro', seats: 3 })
    page.tick()
    const event = page.events()[1]
    assert.equal(event.eventType, 'custom')
    assert.equal(event.eventName, 'signup')
    assert.deepEqual(event.props, { plan: 'pro', seats: 3 })
  })

  test('calls queued in the stub before load are sent after the first page view, in order', () => {
    const page = load({
      stub: [
        ['track', 'early', { n: 1 }],
        ['track', 'later', { n: 2 }],
        ['no-such-method', 'x'],
      ],
    })
    assert.equal(typeof page.window.sluice.track, 'function')
    page.tick()
    assert.equal(page.sent.length, 1) // same tick: one request
    assert.deepEqual(
      page.events().map((e) => [e.eventType, e.eventName, e.props]),
      [
        ['pageview', undefined, undefined],
        ['custom', 'early', { n: 1 }],
        ['custom', 'later', { n: 2 }],
      ]
    )
  })

  test('after load the function form works too: sluice("track", name, props)', () => {
    const page = load()
    page.window.sluice('track', 'download', { file: 'a.pdf' })
    page.tick()
    assert.equal(page.events()[1].eventName, 'download')
  })

  test('props are copied when tracked: later changes to the object are not sent', () => {
    const page = load()
    const props = { step: 1 }
    page.window.sluice.track('wizard', props)
    props.step = 2
    page.tick()
    assert.deepEqual(page.events()[1].props, { step: 1 })
  })

  test('bad arguments are ignored, never thrown', () => {
    const page = load()
    const circular = {}
    circular.self = circular
    assert.doesNotThrow(() => {
      page.window.sluice.track()
      page.window.sluice.track(42)
      page.window.sluice.track('circular', circular)
      page.window.sluice.track('fine', 'not an object')
    })
    page.tick()
    assert.deepEqual(
      page.events().map((e) => [e.eventType, e.eventName, e.props]),
      [
        ['pageview', undefined, undefined],
        ['custom', 'fine', undefined],
      ]
    )
  })
})

test.describe('batching and transport', () => {
  test('events of one tick go in one request; the next tick starts another', () => {
    const page = load()
    page.window.sluice.track('a')
    page.window.sluice.track('b')
    assert.equal(page.sent.length, 0) // nothing before the tick ends
    page.tick()
    page.window.sluice.track('c')
    page.tick()
    assert.deepEqual(
      page.sent.map((s) => s.body.events.map((e) => e.eventName || e.eventType)),
      [['pageview', 'a', 'b'], ['c']]
    )
  })

  test('a large burst is split into requests of at most 25 events', () => {
    const page = load()
    for (let i = 0; i < 59; i++) page.window.sluice.track('e' + i)
    page.tick()
    assert.deepEqual(
      page.sent.map((s) => s.body.events.length),
      [25, 25, 10]
    )
    assert.equal(new Set(page.events().map((e) => e.eventId)).size, 60)
  })

  test('pagehide sends what is queued at once, before any timer runs', () => {
    const page = load()
    page.window.sluice.track('leaving')
    page.window.dispatch('pagehide')
    assert.deepEqual(
      page.events().map((e) => e.eventName || e.eventType),
      ['pageview', 'leaving']
    )
    page.tick()
    assert.equal(page.sent.length, 1) // and not twice
  })

  test('events tracked while the page is leaving (after pagehide) are sent at once', () => {
    const page = load()
    page.window.dispatch('pagehide')
    assert.equal(page.sent.length, 1)
    page.window.sluice.track('goodbye') // e.g. from the page's own pagehide handler, run after ours
    assert.deepEqual(page.sent[1].body.events.map((e) => e.eventName), ['goodbye'])
    page.window.dispatch('pageshow') // restored from the back/forward cache: batching again
    page.window.sluice.track('back')
    assert.equal(page.sent.length, 2)
    page.tick()
    assert.equal(page.sent.length, 3)
  })

  test('the page turning hidden sends what is queued; turning visible does not', () => {
    const page = load()
    page.document.visibilityState = 'visible'
    page.document.dispatch('visibilitychange')
    assert.equal(page.sent.length, 0)
    page.document.visibilityState = 'hidden'
    page.document.dispatch('visibilitychange')
    assert.equal(page.sent.length, 1)
    page.window.sluice.track('in-background') // hidden tabs' timers are throttled: no waiting
    assert.equal(page.sent.length, 2)
    page.document.visibilityState = 'visible'
    page.document.dispatch('visibilitychange')
    page.window.sluice.track('foreground')
    assert.equal(page.sent.length, 2)
    page.tick()
    assert.equal(page.sent.length, 3)
  })

  for (const fetch of ['missing', 'throw']) {
    const fetchIs = fetch === 'missing' ? 'missing' : fetch + 's'
    test(`when fetch is ${fetchIs}, sendBeacon sends a string (text/plain)`, () => {
      const page = load({ fetch })
      page.tick()
      assert.equal(page.sent.length, 1)
      const [{ via, url, type, body }] = page.sent
      assert.equal(via, 'beacon')
      assert.equal(url, 'https://stats.example.net/collect')
      assert.equal(type, 'string')
      assert.equal(body.events[0].eventType, 'pageview')
      assert.deepEqual(page.waiting(), []) // a beacon the browser queued is all that can be known
    })
  }

  test('a collector that is down, or a blocked fetch and beacon, never throws into the page', async () => {
    for (const fetch of ['reject', 'throw', 503]) {
      const page = load({ beacon: 'throw', fetch })
      assert.doesNotThrow(() => {
        page.tick()
        page.window.sluice.track('x')
        page.window.dispatch('pagehide')
        page.document.dispatch('visibilitychange')
      })
    }
    await new Promise((resolve) => setImmediate(resolve)) // an unhandled rejection would fail the run
  })
})

test.describe('sending again what could not be sent', () => {
  const names = (events) => events.map((e) => e.eventName || e.eventType)

  for (const fault of [503, 500, 502, 429, 'reject']) {
    const what = fault === 'reject' ? 'that fails' : 'answered ' + fault
    test(`a fetch ${what} keeps its events; the next page load sends them again`, async () => {
      const storage = new Storage()
      const first = load({ storage, fetch: fault })
      first.window.sluice.track('signup')
      first.tick()
      await first.settle()
      assert.deepEqual(first.events(), [])
      const lost = first.sent.length ? first.sent[0].body.events : first.waiting()
      assert.deepEqual(names(first.waiting()), ['pageview', 'signup'])
      assert.deepEqual(first.waiting(), lost) // as they were, ids and timestamps included

      const second = load({ storage, now: first.clock.now + 5 * MINUTE, url: 'https://example.com/next' })
      const [again] = second.sent
      assert.deepEqual(again.body.events, lost) // sent at once, before anything else
      assert.equal(again.init.keepalive, false) // keepalive's 64 KB would not hold a backlog
      assert.equal(again.body.sentAt, new Date(second.clock.now).toISOString()) // the skew is the new request's
      second.tick()
      await second.settle()
      assert.deepEqual(names(second.events()), ['pageview', 'signup', 'pageview'])
      assert.equal(second.events()[2].path, '/next')
      assert.deepEqual(second.waiting(), [])
      assert.deepEqual(storage.items.sluice_retry, undefined) // nothing left behind
    })
  }

  for (const status of [200, 202, 400, 413, 422]) {
    test(`an answer ${status} is final: nothing is kept`, async () => {
      const page = load({ fetch: status })
      page.tick()
      await page.settle()
      assert.equal(page.sent.length, 1)
      assert.deepEqual(page.waiting(), [])
    })
  }

  test('a beacon that refuses (fetch missing) keeps its events; one that queues does not', async () => {
    const storage = new Storage()
    const refused = load({ storage, fetch: 'missing', beacon: 'refuse' })
    refused.tick()
    assert.deepEqual(names(refused.waiting()), ['pageview'])
    const queued = load({ storage, fetch: 'missing' })
    queued.tick()
    assert.deepEqual(names(queued.events()), ['pageview', 'pageview'])
    assert.deepEqual(queued.waiting(), [])
  })

  test('the page turning visible sends them again, but not those whose answer is still awaited', async () => {
    const page = load({ fetch: 503 })
    page.tick()
    await page.settle()
    page.net.fetch = 'hang'
    page.window.sluice.track('pending')
    page.tick()
    assert.deepEqual(names(page.waiting()), ['pageview', 'pending'])
    page.net.fetch = 'ok'
    page.document.visibilityState = 'hidden'
    page.document.dispatch('visibilitychange')
    page.document.visibilityState = 'visible'
    page.document.dispatch('visibilitychange')
    await page.settle()
    assert.deepEqual(names(page.events()), ['pageview']) // 'pending' is on its way still
    assert.deepEqual(names(page.waiting()), ['pending'])
    page.document.dispatch('visibilitychange')
    assert.equal(page.sent.length, 3) // nothing more while it is
  })

  test('a page back from the back/forward cache sends them again', async () => {
    const page = load({ fetch: 'reject' })
    page.tick()
    await page.settle()
    page.net.fetch = 'ok'
    page.window.dispatch('pageshow', { persisted: false }) // the first showing: loading sent them already
    assert.equal(page.sent.length, 0)
    page.window.dispatch('pagehide', { persisted: true })
    page.window.dispatch('pageshow', { persisted: true })
    page.tick()
    await page.settle()
    assert.deepEqual(names(page.events()), ['pageview', 'pageview'])
    assert.deepEqual(page.waiting(), [])
  })

  test('events whose page closed before the answer came are sent again on the next load', async () => {
    const storage = new Storage()
    const first = load({ storage, fetch: 'hang' })
    first.window.sluice.track('leaving')
    first.window.dispatch('pagehide')
    assert.deepEqual(names(first.waiting()), ['pageview', 'leaving'])
    const second = load({ storage })
    second.tick()
    await second.settle()
    assert.deepEqual(
      second.events().map((e) => e.eventId),
      [...first.sent[0].body.events.map((e) => e.eventId), second.sent[1].body.events[0].eventId]
    )
    assert.deepEqual(second.waiting(), [])
  })

  test('at most 200 events are kept, the oldest dropped first, and none older than 24 hours', async () => {
    const storage = new Storage()
    const first = load({ storage, fetch: 503 })
    for (let i = 1; i < 250; i++) first.window.sluice.track('e' + i)
    first.tick()
    await first.settle()
    assert.deepEqual(names(first.waiting()), Array.from({ length: 200 }, (_, i) => 'e' + (i + 50)))

    const later = load({ storage, fetch: 503, now: first.clock.now + 23 * 60 * MINUTE })
    later.tick()
    await later.settle()
    assert.equal(later.waiting().length, 200)
    assert.deepEqual(names(later.waiting().slice(-2)), ['e249', 'pageview'])

    const nextDay = load({ storage, now: first.clock.now + 24 * 60 * MINUTE })
    nextDay.tick()
    await nextDay.settle()
    assert.deepEqual(names(nextDay.sent.flatMap((s) => s.body.events)), ['pageview', 'pageview'])
    assert.deepEqual(nextDay.waiting(), [])
  })

  test('cookieless: nothing is stored in the browser; the page sends again when shown, a new page cannot', async () => {
    const storage = new Storage()
    const page = load({ storage, fetch: 503, attrs: { cookieless: '' } })
    page.tick()
    await page.settle()
    assert.deepEqual(storage.items, {})
    page.net.fetch = 'ok'
    page.document.dispatch('visibilitychange')
    await page.settle()
    assert.deepEqual(names(page.events()), ['pageview'])
    assert.equal(page.sent.length, 2)
    assert.deepEqual(storage.items, {})

    const failed = load({ storage, fetch: 503, attrs: { cookieless: '' } })
    failed.tick()
    await failed.settle()
    const next = load({ storage, attrs: { cookieless: '' } })
    next.tick()
    assert.equal(next.sent.length, 1) // its own page view only
    assert.deepEqual(storage.items, {})
  })

  test('a list left in storage by a page that was not cookieless is not touched by a cookieless one', async () => {
    const storage = new Storage()
    const before = load({ storage, fetch: 503 })
    before.tick()
    await before.settle()
    const kept = storage.items.sluice_retry
    const page = load({ storage, attrs: { cookieless: '' } })
    page.tick()
    await page.settle()
    assert.deepEqual(names(page.events()), ['pageview'])
    assert.equal(page.events()[0].visitorId, undefined)
    assert.equal(storage.items.sluice_retry, kept)
  })

  test('storage that throws: this page still sends them again when shown', async () => {
    const throwing = {
      getItem() {
        throw new Error('SecurityError')
      },
      setItem() {
        throw new Error('QuotaExceededError')
      },
      removeItem() {
        throw new Error('SecurityError')
      },
    }
    const page = load({ storage: throwing, fetch: 'reject' })
    page.tick()
    await page.settle()
    page.net.fetch = 'ok'
    page.document.dispatch('visibilitychange')
    await page.settle()
    assert.deepEqual(names(page.events()), ['pageview'])
  })

  for (const [optOut, how] of [
    [{ storage: new Storage(), set: true }, 'sluice_ignore set'],
    [{ storage: new Storage(), dnt: true }, 'Do-Not-Track'],
  ]) {
    test(`after an opt-out (${how}) what was kept is forgotten, not sent`, async () => {
      const { storage } = optOut
      const first = load({ storage, fetch: 503 })
      first.tick()
      await first.settle()
      assert.equal(first.waiting().length, 1)
      if (optOut.set) storage.setItem('sluice_ignore', 'true')
      const second = load({ storage, dnt: optOut.dnt })
      second.tick()
      assert.equal(second.sent.length, 0)
      const ids = ['sluice_visitor', 'sluice_session']
      assert.deepEqual(Object.keys(storage.items), optOut.set ? [...ids, 'sluice_ignore'] : ids) // the list is gone
    })
  }
})

test.describe('identity', () => {
  test('the visitor id persists across page loads; the session survives 29 minutes idle', () => {
    const storage = new Storage()
    const first = load({ storage })
    first.tick()
    const second = load({ storage, now: first.clock.now + 29 * MINUTE })
    second.tick()
    const [a, b] = [first.events()[0], second.events()[0]]
    assert.equal(b.visitorId, a.visitorId)
    assert.equal(b.sessionId, a.sessionId)
  })

  test('a new session starts after more than 30 minutes without an event; activity extends it', () => {
    const page = load()
    page.advance(20 * MINUTE)
    page.window.sluice.track('still-here') // 20 minutes after the page view
    page.advance(25 * MINUTE)
    page.window.sluice.track('back') // 25 minutes after the last event: same session
    page.advance(31 * MINUTE)
    page.window.sluice.track('next-day') // 31 minutes idle: a new one
    page.tick()
    const [view, still, back, next] = page.events()
    assert.equal(still.sessionId, view.sessionId)
    assert.equal(back.sessionId, view.sessionId)
    assert.notEqual(next.sessionId, view.sessionId)
    assert.match(next.sessionId, UUID)
    assert.equal(next.visitorId, view.visitorId)
  })

  test('cookieless mode sends no visitor or session id and writes nothing to storage', () => {
    const storage = new Storage()
    const page = load({ storage, attrs: { cookieless: '' } })
    page.window.sluice.track('x')
    page.tick()
    for (const event of page.events()) {
      assert.equal(event.visitorId, undefined)
      assert.equal(event.sessionId, undefined)
    }
    assert.deepEqual(storage.items, {})
    assert.equal(page.events().length, 2)
  })

  test('data-cookieless="false" is not cookieless', () => {
    const page = load({ attrs: { cookieless: 'false' } })
    page.tick()
    assert.match(page.events()[0].visitorId, UUID)
  })

  test('storage that throws falls back to memory: ids stay stable within the page', () => {
    const throwing = {
      getItem() {
        throw new Error('SecurityError')
      },
      setItem() {
        throw new Error('QuotaExceededError')
      },
    }
    const page = load({ storage: throwing })
    page.window.sluice.track('x')
    page.tick()
    const [view, custom] = page.events()
    assert.match(view.visitorId, UUID)
    assert.equal(custom.visitorId, view.visitorId)
    assert.equal(custom.sessionId, view.sessionId)
  })

  test('storage that reads but refuses writes (old private modes) still gives stable ids', () => {
    const readOnly = new Storage()
    readOnly.setItem = () => {
      throw new Error('QuotaExceededError')
    }
    const page = load({ storage: readOnly })
    page.window.sluice.track('x')
    page.tick()
    const [view, custom] = page.events()
    assert.equal(custom.visitorId, view.visitorId)
    assert.equal(custom.sessionId, view.sessionId)
  })

  test('event ids are unique version 7 UUIDs, with crypto.getRandomValues or, without it, Math.random', () => {
    for (const crypto of [{ getRandomValues: (b) => globalThis.crypto.getRandomValues(b) }, undefined]) {
      const page = load()
      page.window.crypto = crypto
      for (let i = 0; i < 20; i++) page.window.sluice.track('e')
      page.tick()
      const ids = page.events().map((e) => e.eventId)
      for (const id of ids) assert.match(id, UUID_V7)
      assert.equal(new Set(ids).size, 21)
    }
  })
})

test.describe('opting out', () => {
  test('Do-Not-Track: nothing is sent, nothing stored, and the API still works', () => {
    const storage = new Storage()
    const page = load({ dnt: true, storage, stub: [['track', 'queued']] })
    assert.doesNotThrow(() => {
      page.window.sluice.track('x', { a: 1 })
      page.window.sluice.pageview()
      page.click(link('https://partner.example/'))
      page.history.pushState({}, '', '/next')
    })
    page.tick()
    page.window.dispatch('pagehide')
    assert.equal(page.sent.length, 0)
    assert.deepEqual(storage.items, {})
  })

  test('localStorage.sluice_ignore set before load: nothing is sent', () => {
    const page = load({ storage: new Storage({ sluice_ignore: 'true' }) })
    page.window.sluice.track('x')
    page.tick()
    assert.equal(page.sent.length, 0)
  })

  test('sluice_ignore set while the page is open takes effect at once; "false" does not opt out', () => {
    const storage = new Storage({ sluice_ignore: 'false' })
    const page = load({ storage })
    page.tick()
    assert.equal(page.sent.length, 1)
    storage.setItem('sluice_ignore', '1')
    page.window.sluice.track('x')
    page.tick()
    assert.equal(page.sent.length, 1)
  })

  test('without data-site nothing is sent', () => {
    const page = load({ attrs: { site: null } })
    page.window.sluice.track('x')
    page.tick()
    assert.equal(page.sent.length, 0)
  })
})

test('loading the script twice installs it once', () => {
  const page = load()
  const first = page.window.sluice
  const vm = require('node:vm')
  vm.runInContext(SOURCE, vm.createContext(page.window))
  page.tick()
  assert.equal(page.window.sluice, first)
  assert.equal(page.events().length, 1)
})
