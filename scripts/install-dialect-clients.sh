#!/usr/bin/env bash
# Installs the Node.js clients of Segment, RudderStack and PostHog, at pinned versions, into
# .venv/node-clients (tests/test_dialect_clients.py sends with them). Idempotent: a directory
# already holding these versions is left alone. No browser, no install scripts.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${SLUICE_NODE_CLIENTS:-$root/.venv/node-clients}
packages=(@segment/analytics-node@3.1.0 @rudderstack/rudder-sdk-node@3.0.13 posthog-node@5.70.0)
stamp="$dir/.installed-$(echo "${packages[*]}" | sha1sum | cut -c1-12)"

[ -f "$stamp" ] && exit 0
mkdir -p "$dir"
echo '{"private": true}' > "$dir/package.json"
npm install --prefix "$dir" --no-audit --no-fund --ignore-scripts --silent "${packages[@]}" >/dev/null
touch "$stamp"
