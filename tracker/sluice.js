// Sluice tracker: page views, link clicks and custom events, posted to the collector in batches.
//   <script defer src="https://HOST/sluice.js" data-site="example-com"></script>
// Options: data-endpoint (default: /collect on the script's host), data-cookieless, data-hash
// (hash changes are page views), data-auto-clicks="false" (only links marked data-sluice-click).
// API: sluice.track(name, props); before the script loads, calls queue in a stub:
//   window.sluice = window.sluice || function () { (sluice.q = sluice.q || []).push(arguments) }
//   sluice('track', 'signup', { plan: 'pro' })
// No dependencies, and nothing in here may throw into the host page.
// The whole file is one function of `window` (a test passes a fake one).
try {
  ;(function (w) {
    'use strict'
    if (w.sluice && w.sluice.loaded) return

    const d = w.document
    const nav = w.navigator || {}
    const loc = w.location
    const SESSION_MS = 30 * 60 * 1000 // inactivity that starts a new session
    const BATCH = 25 // events per request: keeps a body well under the 64 KB beacon limit
    const noop = () => {}
    const safe = (f) =>
      function () {
        try {
          return f.apply(this, arguments)
        } catch (e) {}
      }

    const script = d.currentScript || d.querySelector('script[data-site]')
    const attr = (name) => (script ? script.getAttribute('data-' + name) : null)
    const flag = (name) => attr(name) !== null && attr(name) !== 'false'
    const site = attr('site')
    const endpoint = attr('endpoint') || new URL('/collect', (script && script.src) || loc.href).href
    const cookieless = flag('cookieless')
    const hashRouting = flag('hash')
    const autoClicks = attr('auto-clicks') !== 'false'

    // localStorage can be missing, throw, or read but refuse writes (blocked storage, private
    // modes): what could not be stored is kept in memory for the page's lifetime.
    const memory = {}
    const load = (key) => {
      let value
      try {
        value = w.localStorage.getItem(key)
      } catch (e) {}
      return value ?? memory[key] ?? null
    }
    const save = (key, value) => {
      memory[key] = value
      try {
        w.localStorage.setItem(key, value)
      } catch (e) {}
    }

    // Read on every event, so that an opt-out button takes effect at once.
    const ignored = () => {
      const optOut = load('sluice_ignore')
      return (
        !site ||
        nav.doNotTrack === '1' ||
        w.doNotTrack === '1' ||
        (optOut !== null && optOut !== 'false')
      )
    }

    // A random UUID, version 4; given a time, version 7 (RFC 9562): the milliseconds first, so the
    // ids of an hour sit side by side in the collector's and the ETL's primary keys.
    const uuid = (ms) => {
      const c = w.crypto
      const b = new Uint8Array(16)
      if (c && c.getRandomValues) c.getRandomValues(b)
      else for (let i = 0; i < 16; i++) b[i] = Math.random() * 256
      b[6] = (b[6] & 15) | (ms ? 112 : 64)
      b[8] = (b[8] & 63) | 128
      if (ms) for (let i = 5; i >= 0; i--, ms = Math.floor(ms / 256)) b[i] = ms % 256
      const h = Array.from(b, (x) => (x + 256).toString(16).slice(1)).join('')
      return [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20)].join('-')
    }

    const visitorId = () => {
      let id = load('sluice_visitor')
      if (!id) save('sluice_visitor', (id = uuid()))
      return id
    }

    // One session per visit: a new id after 30 minutes without an event.
    const sessionId = (now) => {
      let s
      try {
        s = JSON.parse(load('sluice_session'))
      } catch (e) {}
      if (!s || !s.id || now - s.at > SESSION_MS) s = { id: uuid() }
      s.at = now
      save('sluice_session', JSON.stringify(s))
      return s.id
    }

    let timeZone
    try {
      timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone
    } catch (e) {}

    let queue = []
    let timer = null
    let leaving = false // hidden or unloading: timers may never run, so send at once

    const send = (body) => {
      try {
        if (nav.sendBeacon(endpoint, body)) return // a string goes as text/plain: no CORS preflight
      } catch (e) {}
      try {
        w.fetch(endpoint, {
          method: 'POST',
          body,
          keepalive: true,
          credentials: 'omit',
          headers: { 'Content-Type': 'text/plain' },
        }).catch(noop)
      } catch (e) {}
    }

    const flush = () => {
      w.clearTimeout(timer)
      timer = null
      const sentAt = new Date().toISOString()
      while (queue.length) send(JSON.stringify({ sentAt, events: queue.splice(0, BATCH) }))
    }

    let referrer = d.referrer || undefined
    let lastPage = null

    const track = (eventType, fields) => {
      if (ignored()) return
      const now = new Date()
      const event = {
        eventType,
        siteId: site,
        eventId: uuid(now.getTime()),
        timestamp: now.toISOString(),
        url: loc.href,
        path: loc.pathname + (hashRouting ? loc.hash : ''),
        referrer,
        title: d.title,
        screen: w.screen ? { width: w.screen.width, height: w.screen.height } : undefined,
        language: nav.language,
        timeZone,
      }
      if (!cookieless) {
        event.visitorId = visitorId()
        event.sessionId = sessionId(now.getTime())
      }
      // A copy: props that do not survive JSON drop this event alone, and later changes are not seen.
      queue.push(JSON.parse(JSON.stringify(Object.assign(event, fields))))
      if (leaving) flush()
      else if (!timer) timer = w.setTimeout(safe(flush), 0) // everything tracked in this tick goes together
    }

    const utmParams = () => {
      const query = new URLSearchParams(loc.search)
      const utm = {}
      for (const key of ['source', 'medium', 'campaign', 'term', 'content']) {
        const value = query.get('utm_' + key)
        if (value) utm['utm_' + key] = value
      }
      return Object.keys(utm).length ? { utmParams: utm } : undefined
    }

    // Automatic page views skip a URL that has not changed (replaceState of state only, a hash
    // change when hashes are not routes). After a SPA navigation the previous page is the referrer.
    const pageview = (force) => {
      const page = hashRouting ? loc.href : loc.href.split('#')[0]
      if (page === lastPage && !force) return
      if (lastPage) referrer = lastPage
      lastPage = page
      track('pageview', { attribution: utmParams() })
    }
    // Routers set the title after pushState: look one tick later, which also folds a push followed
    // by a replace (a redirect) into one page view of where the user ended up.
    const later = () => w.setTimeout(safe(pageview), 0)

    const onClick = (ev) => {
      const link = ev.target && ev.target.closest && ev.target.closest('a[href]')
      if (!link || (ev.type === 'auxclick' && ev.button !== 1)) return
      const label = link.getAttribute('data-sluice-click')
      const outbound = link.host && link.host !== loc.host
      if (label === null && !(autoClicks && outbound)) return
      track('click', {
        target: link.href,
        text: (link.innerText || link.textContent || '').trim().slice(0, 200) || undefined,
        props: label ? { label } : undefined,
      })
    }

    const api = {
      loaded: true,
      track: safe((name, props) => {
        if (typeof name !== 'string' || !name) return
        track('custom', { eventName: name, props: props && typeof props === 'object' ? props : undefined })
      }),
      pageview: safe(() => pageview(true)),
    }
    const queued = (w.sluice && w.sluice.q) || []
    const sluice = Object.assign(
      safe((method, ...args) => typeof api[method] === 'function' && api[method](...args)),
      api
    )
    w.sluice = sluice

    safe(() => {
      const history = w.history
      for (const method of ['pushState', 'replaceState']) {
        const original = history[method]
        history[method] = function () {
          const result = original.apply(this, arguments)
          later()
          return result
        }
      }
      w.addEventListener('popstate', later)
      if (hashRouting) w.addEventListener('hashchange', later)
    })()
    d.addEventListener('click', safe(onClick), true)
    d.addEventListener('auxclick', safe(onClick), true)
    // Leaving the page: send what is queued now, while the page can still send, and whatever is
    // tracked from then on (by the page's own pagehide handlers, say) as it comes.
    const leave = safe((away) => {
      leaving = away
      if (away) flush()
    })
    w.addEventListener('pagehide', () => leave(true))
    w.addEventListener('pageshow', (ev) => {
      leave(false)
      if (ev && ev.persisted) safe(pageview)(true) // back from the back/forward cache: a new view
    })
    d.addEventListener('visibilitychange', () => leave(d.visibilityState === 'hidden'))

    safe(pageview)()
    for (const args of queued) sluice(...args)
  })(window)
} catch (e) {}
