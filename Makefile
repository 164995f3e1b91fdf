# mocd — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck install browser clients bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mocd check --config examples
	@echo "mocd: the feed URLs of the example units (subscribe in Thunderbird, Outlook, Google,"
	@echo "      Apple Calendar; served by the daemon on 127.0.0.1:8470 once it runs):"
	$(BIN)/mocd tokens list --config examples
	@echo "mocd: starting the daemon on examples/ — SQLite in ./var/mocd.sqlite3, emails written"
	@echo "      as .eml files into ./var/outbox/ (no mail.url set); Ctrl-C stops it."
	$(BIN)/mocd run --config examples

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Debian tools the tests drive: headless Chromium for tests/test_pages_browser.py
# (Selenium drives it) and calcurse, a calendar client that imports the emails' .ics
# attachments (tests/test_delivery_changes.py). Best effort: without root or network the
# tests that need them skip and say so loudly.
DEBIAN_TOOLS := chromium:chromium chromedriver:chromium-driver calcurse:calcurse
browser:
	@missing=""; for pair in $(DEBIAN_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  (apt-get update && apt-get install -y --no-install-recommends $$missing) || \
	  echo "mocd: could not install$$missing; the tests that need them will be SKIPPED"; fi

# ical.js, the parser of Thunderbird's calendar, for tests/test_feeds_clients.py (npm, pinned
# by tests/clients/package-lock.json). Best effort: without node/npm those tests skip loudly.
CLIENTS := tests/clients/node_modules/.installed
$(CLIENTS): tests/clients/package.json tests/clients/package-lock.json
	@(cd tests/clients && npm ci --silent --no-audit --no-fund && touch node_modules/.installed) || \
	  echo "mocd: could not install ical.js (npm); the Thunderbird-parser tests will be SKIPPED"

clients: $(CLIENTS)

test: $(STAMP) browser clients lint typecheck
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/expand_bench.py
	$(BIN)/python bench/feeds_render.py
	$(BIN)/python bench/feeds_http.py  # needs wrk and nginx: apt-get install -y wrk nginx-light

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache test-artifacts \
	  tests/clients/node_modules
