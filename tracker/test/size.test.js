'use strict'
// The served file (the minified tracker) must stay under 3 KB gzipped: the README quotes the size.
const test = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const zlib = require('node:zlib')

const root = path.join(__dirname, '..', '..')
const source = path.join(root, 'tracker', 'sluice.js')
const minified = path.join(root, 'tracker', 'dist', 'sluice.min.js')

test('the minified tracker is under 3 KB gzipped', () => {
  if (!fs.existsSync(minified) || fs.statSync(minified).mtimeMs < fs.statSync(source).mtimeMs) {
    execFileSync('make', ['--no-print-directory', '-C', root, 'tracker/dist/sluice.min.js'], { stdio: 'ignore' })
  }
  const gzipped = zlib.gzipSync(fs.readFileSync(minified), { level: 9 }).length
  assert.ok(gzipped < 3 * 1024, `tracker/dist/sluice.min.js is ${gzipped} bytes gzipped`)
})
