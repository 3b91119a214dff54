// A small fake browser to load sluice.js in: just what the tracker touches, with a clock and a
// timer queue the test drives, and every request the tracker sends recorded in `sent`.
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const vm = require('node:vm')

// SLUICE_TRACKER=tracker/dist/sluice.min.js runs the same tests against the minified file.
const FILE = process.env.SLUICE_TRACKER ? path.resolve(process.env.SLUICE_TRACKER) : path.join(__dirname, '..', 'sluice.js')
const SOURCE = fs.readFileSync(FILE, 'utf8')

class Listeners {
  constructor() {
    this.byType = {}
  }
  addEventListener(type, fn) {
    ;(this.byType[type] = this.byType[type] || []).push(fn)
  }
  dispatch(type, event = {}) {
    for (const fn of this.byType[type] || []) fn({ type, ...event })
  }
}

class Storage {
  constructor(items = {}) {
    this.items = { ...items }
  }
  getItem(key) {
    return key in this.items ? this.items[key] : null
  }
  setItem(key, value) {
    this.items[key] = String(value)
  }
  removeItem(key) {
    delete this.items[key]
  }
}

// A link element as the click handler sees it: `closest('a[href]')` finds itself.
function link(href, { text = 'a link', attrs = {} } = {}) {
  const url = new URL(href)
  return {
    href: url.href,
    host: url.host,
    innerText: text,
    getAttribute: (name) => (name in attrs ? attrs[name] : null),
    closest: function () {
      return this
    },
  }
}

/**
 * Options: url, referrer, title, attrs (the script tag's data-* attributes, without "data-"),
 * storage (a Storage, shared between page loads), dnt, beacon ('ok' | 'refuse' | 'missing' |
 * 'throw'), fetch ('ok' | an HTTP status the collector answers | 'reject' (no answer: the network,
 * or a refusal without CORS headers) | 'hang' (an answer that never comes, as for a page that
 * closed) | 'missing' | 'throw'), stub (calls made before load, as arrays), now (ms),
 * noCurrentScript. `net.beacon` and `net.fetch` may be changed while the page is open.
 */
function load(options = {}) {
  const clock = { now: options.now ?? Date.UTC(2026, 0, 15, 12, 0, 0) }
  class FakeDate extends Date {
    constructor(...args) {
      if (args.length) super(...args)
      else super(clock.now)
    }
    static now() {
      return clock.now
    }
  }

  let timers = []
  let nextTimer = 1
  const sent = [] // { via: 'beacon' | 'fetch', url, body (parsed), status (fetch: the answer's), init }
  const net = { beacon: options.beacon ?? 'ok', fetch: options.fetch ?? 'ok' }
  const win = new Listeners()
  const doc = new Listeners()
  const attrs = { site: 'example-com', ...options.attrs }
  const script = {
    src: 'https://stats.example.net/sluice.js',
    getAttribute: (name) => {
      const key = name.replace(/^data-/, '')
      return key in attrs ? attrs[key] : null
    },
  }

  const location = {}
  const setUrl = (href) => {
    const url = new URL(href, location.href)
    Object.assign(location, {
      href: url.href,
      pathname: url.pathname,
      search: url.search,
      hash: url.hash,
      host: url.host,
    })
  }
  setUrl(options.url ?? 'https://example.com/')

  const history = {
    pushState(_state, _title, url) {
      if (url !== undefined) setUrl(url)
    },
    replaceState(_state, _title, url) {
      if (url !== undefined) setUrl(url)
    },
  }

  Object.assign(doc, {
    title: options.title ?? 'Home',
    referrer: options.referrer ?? '',
    visibilityState: 'visible',
    currentScript: options.noCurrentScript ? null : script,
    querySelector: (selector) => (selector === 'script[data-site]' ? script : null),
  })

  const navigator = { language: 'en-GB', doNotTrack: options.dnt ? '1' : null }
  if (net.beacon !== 'missing') {
    navigator.sendBeacon = (url, body) => {
      if (net.beacon === 'throw') throw new TypeError('beacon blocked')
      if (net.beacon === 'refuse') return false
      sent.push({ via: 'beacon', url, body: JSON.parse(body), type: typeof body })
      return true
    }
  }
  function fetch(url, init) {
    if (net.fetch === 'throw') throw new TypeError('fetch blocked')
    if (net.fetch === 'reject') return Promise.reject(new TypeError('Failed to fetch'))
    const status = net.fetch === 'ok' ? 202 : net.fetch === 'hang' ? undefined : net.fetch
    sent.push({ via: 'fetch', url, body: JSON.parse(init.body), status, type: typeof init.body, init })
    return status === undefined ? new Promise(() => {}) : Promise.resolve({ status })
  }

  Object.assign(win, {
    document: doc,
    navigator,
    location,
    history,
    fetch: net.fetch === 'missing' ? undefined : fetch,
    screen: { width: 1280, height: 720 },
    localStorage: options.storage ?? new Storage(),
    crypto: globalThis.crypto,
    setTimeout: (fn) => {
      timers.push({ id: nextTimer, fn })
      return nextTimer++
    },
    clearTimeout: (id) => {
      timers = timers.filter((t) => t.id !== id)
    },
    Date: FakeDate,
    URL,
    URLSearchParams,
  })
  if (options.stub) {
    win.sluice = function () {
      ;(win.sluice.q = win.sluice.q || []).push(arguments)
    }
  }
  win.window = win
  const context = vm.createContext(win)
  // Calls made before the tracker loads go through the page's stub.
  for (const args of options.stub || []) vm.runInContext('sluice', context)(...args)
  vm.runInContext(SOURCE, context, { filename: 'sluice.js' })

  return {
    window: win,
    document: doc,
    location,
    history,
    sent,
    net,
    clock,
    /** Runs the timers due now (and those they start), like the end of the current task. */
    tick() {
      for (let i = 0; i < 10 && timers.length; i++) {
        const due = timers
        timers = []
        for (const t of due) t.fn()
      }
    },
    advance(ms) {
      clock.now += ms
    },
    /** Lets the answers already given reach the tracker (promise callbacks run). */
    settle() {
      return new Promise((resolve) => setImmediate(resolve))
    },
    /** All events sent so far and taken (a beacon, or a fetch answered 2xx), in order. */
    events() {
      return sent.filter((s) => s.via === 'beacon' || (s.status >= 200 && s.status < 300)).flatMap((s) => s.body.events)
    },
    /** The events the tracker keeps for sending again, oldest first. */
    waiting() {
      return JSON.parse(win.localStorage.getItem('sluice_retry') || '[]')
    },
    click(target, event = {}) {
      doc.dispatch('click', { target, button: 0, ...event })
    },
  }
}

module.exports = { load, link, Storage, SOURCE }
