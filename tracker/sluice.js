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
    const RETRY = 'sluice_retry'
    const RETRY_MAX = 200 // events kept for sending again, the newest
    const RETRY_MS = 24 * 60 * 60 * 1000 // and none older than this
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
        if (value === null) w.localStorage.removeItem(key)
        else w.localStorage.setItem(key, value)
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

    // Events not yet taken by the collector, oldest first. Each is written down before its request
    // goes and crossed off when the collector's answer is seen, so that one whose page closed before
    // the answer came is sent again too (its id makes that safe). A cookieless page stores nothing in
    // the browser: its list lives in memory, for the page's lifetime.
    const waiting = () => {
      let list
      try {
        list = JSON.parse(cookieless ? memory[RETRY] : load(RETRY))
      } catch (e) {}
      const since = Date.now() - RETRY_MS
      return Array.isArray(list) ? list.filter((e) => e && Date.parse(e.timestamp) > since) : []
    }
    const keep = (list) => {
      const value = list.length ? JSON.stringify(list.slice(-RETRY_MAX)) : null
      if (cookieless) memory[RETRY] = value
      else save(RETRY, value)
    }
    const inFlight = {} // eventId -> 1 while its request has no answer yet

    const send = (events, again) => {
      const body = JSON.stringify({ sentAt: new Date().toISOString(), events })
      const ids = events.map((e) => e.eventId)
      const done = safe((taken) => {
        for (const id of ids) delete inFlight[id]
        if (taken) keep(waiting().filter((e) => !ids.includes(e.eventId)))
      })
      for (const id of ids) inFlight[id] = 1
      try {
        // fetch, unlike sendBeacon, says what became of the request. A 5xx or 429 (or no answer at
        // all) may go better later; any other answer will not. A string goes as text/plain: no CORS
        // preflight. keepalive lets a request outlive its page, but browsers allow such requests 64 KB
        // in flight, which a backlog could exceed: that one goes as the page opens or is shown, and
        // what a closing page cuts off stays listed.
        return w
          .fetch(endpoint, {
            method: 'POST',
            body,
            keepalive: !again,
            credentials: 'omit',
            headers: { 'Content-Type': 'text/plain' },
          })
          .then((r) => done(r.status < 500 && r.status !== 429), () => done())
      } catch (e) {}
      try {
        done(nav.sendBeacon(endpoint, body)) // true: queued by the browser, all that can be known
      } catch (e) {
        done()
      }
    }

    const flush = () => {
      w.clearTimeout(timer)
      timer = null
      if (queue.length) keep(waiting().concat(queue))
      while (queue.length) send(queue.splice(0, BATCH))
    }

    // What earlier pages, or this one, could not send goes again on load and when the page is shown;
    // after an opt-out it is forgotten instead.
    const retry = () => {
      if (ignored()) return keep([])
      const list = waiting().filter((e) => !inFlight[e.eventId])
      while (list.length) send(list.splice(0, BATCH), true)
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
    const leave = safe((away, shown) => {
      leaving = away
      if (away) flush()
      else if (shown) retry()
    })
    w.addEventListener('pagehide', () => leave(true))
    w.addEventListener('pageshow', (ev) => {
      const restored = ev && ev.persisted // back from the back/forward cache: a new view
      leave(false, restored)
      if (restored) safe(pageview)(true)
    })
    d.addEventListener('visibilitychange', () => leave(d.visibilityState === 'hidden', true))

    safe(retry)()
    safe(pageview)()
    for (const args of queued) sluice(...args)
  })(window)
} catch (e) {}
