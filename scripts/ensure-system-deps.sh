#!/usr/bin/env bash
# Installs (Debian packages) and starts what the test suite needs outside Python: a running
# PostgreSQL server with the hll extension (the reports' visitor sketches) and psql (`sluice psql`),
# nginx, Chromium with its driver, Node.js for the tracker's unit tests with npx for its minifier,
# and iproute2 (`ip netns`) for the end-to-end tests' network namespace.
# Idempotent and quiet when everything is already there; never prompts (CI has no stdin).
set -euo pipefail

need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npx >/dev/null 2>&1 || need+=(npm)
command -v ip >/dev/null 2>&1 || need+=(iproute2)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-system-deps: missing ${need[*]}; run as root or install them with apt-get" >&2
    exit 1
  fi
  echo "ensure-system-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >/dev/null
fi

# postgresql-hll for the server's version: the reports' distinct visitors from sketches (README
# "Reports API"; Sluice works without it, counting exactly). Known only once PostgreSQL is installed.
pg_version=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)
if [ -n "$pg_version" ] && [ ! -f "/usr/share/postgresql/$pg_version/extension/hll.control" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-system-deps: missing postgresql-$pg_version-hll; run as root or install it with apt-get" >&2
    exit 1
  fi
  echo "ensure-system-deps: installing postgresql-$pg_version-hll" >&2
  apt-get update -qq </dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "postgresql-$pg_version-hll" </dev/null >/dev/null
fi

# A PostgreSQL server on PGHOST:PGPORT (default 127.0.0.1:5432). pytest-postgresql can also start
# its own, but not as root, so on a root CI machine the system cluster is the way.
host=${PGHOST:-127.0.0.1}
port=${PGPORT:-5432}
if ! pg_isready -q -h "$host" -p "$port" 2>/dev/null; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    pg_createcluster "$version" main >/dev/null
  fi
  echo "ensure-system-deps: starting PostgreSQL $version" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 30); do pg_isready -q -h "$host" -p "$port" && break; sleep 1; done
  pg_isready -h "$host" -p "$port"
fi

# The Node.js clients the dialect tests send with (Segment, RudderStack, PostHog), pinned.
"$(dirname "$0")/install-dialect-clients.sh"
