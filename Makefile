# HealthBridge: two commands set everything up on a fresh machine.
#   make demo   the whole system on loopback (SQLite), telling the story
#   make test   lint, type-check the pure core, and run every test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv test lint demo demo-once bench clean browser

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's chromium drives the browser tests, and a CJK font lets pages show their
# Chinese labels; redis-server, nginx and prometheus (promtool) are started by the
# tests themselves on loopback. Install what is missing when we may (root, apt).
BROWSER_PKGS := chromium fonts-noto-cjk redis-server nginx prometheus
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "noto.*cjk" \
	   || ! command -v redis-server >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1 \
	   || ! test -x /usr/sbin/nginx; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's $(BROWSER_PKGS) for the browser tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PKGS) >/dev/null) \
	      || echo "could not install $(BROWSER_PKGS); browser tests will say what is missing"; \
	  else echo "chromium or a CJK font is missing; browser tests will say what is missing"; fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy credential ledger/errors.py ledger/merkle.py ledger/tiles.py ledger/note.py ledger/checkpoint.py ledger/entries.py ledger/rules.py ledger/revocation.py ledger/consortium.py ledger/shards.py ledger/http_cache.py issuer/status_rules.py

test: $(STAMP) browser lint
	$(BIN)/pytest --cov --cov-report=term:skip-covered

demo: $(STAMP)
	$(BIN)/healthbridge demo

demo-once: $(STAMP)
	$(BIN)/healthbridge demo --once

bench: $(STAMP)
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/issue.py
	$(BIN)/python bench/scan.py
	$(BIN)/python bench/tile_cache.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
