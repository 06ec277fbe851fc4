# HealthBridge: two commands set everything up on a fresh machine.
#   make demo   the whole system on loopback (SQLite), telling the story
#   make test   lint, type-check the pure core, and run every test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv test lint demo demo-once bench chaos clean browser translations

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
	$(BIN)/mypy common/b64.py credential ledger/log ledger/node/http_cache.py issuer/status_rules.py

test: $(STAMP) browser lint
	$(BIN)/pytest --cov --cov-report=term:skip-covered

demo: $(STAMP)
	$(BIN)/healthbridge demo

demo-once: $(STAMP)
	$(BIN)/healthbridge demo --once

bench: $(STAMP)
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/ledger.py --pg-scale-entries 1000000 --pg-scale-append 50000
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/issue.py
	$(BIN)/python bench/scan.py
	$(BIN)/python bench/privacy.py
	$(BIN)/python bench/login_burst.py
	$(BIN)/python bench/tile_cache.py
	$(BIN)/python bench/shards.py
	$(BIN)/python bench/lineage.py
	$(BIN)/python bench/metrics.py

# The kill -9 campaign over both regions (about 10 minutes; docs/performance.md).
chaos: $(STAMP)
	$(BIN)/python bench/chaos.py --kills 30 --min-gap 1 --max-gap 3 --max-sync-age 10 \
	  --checkpoint-interval 2 --drain-timeout 90

# The pages' gettext catalogs: <package>/translations/<language>/LC_MESSAGES/messages.po,
# compiled to .mo beside them (both committed, so a fresh clone needs no build step).
# Each page's catalog takes its own package's strings; the kiosk's also takes the
# verdict texts of credential/verdict.py. Run after changing any page's words, then
# translate the new entries and run it again to compile.
LANGUAGES := zh_Hans zh_Hant pt
CATALOGS  := verifier:credential/verdict.py mobile_stub: issuer/admin:
translations: $(STAMP)
	@for spec in $(CATALOGS); do \
	  pkg=$${spec%%:*}; extra=$$(echo $${spec#*:} | tr ',' ' '); mkdir -p $$pkg/translations; \
	  $(BIN)/pybabel extract -F babel.cfg -k N_ --no-location --sort-output \
	    --project healthbridge -o $$pkg/translations/messages.pot $$pkg $$extra || exit 1; \
	  for lang in $(LANGUAGES); do \
	    if [ -f $$pkg/translations/$$lang/LC_MESSAGES/messages.po ]; then \
	      $(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete \
	        -i $$pkg/translations/messages.pot -d $$pkg/translations -l $$lang || exit 1; \
	    else \
	      $(BIN)/pybabel init -i $$pkg/translations/messages.pot -d $$pkg/translations -l $$lang || exit 1; \
	    fi; \
	  done; \
	  $(BIN)/pybabel compile -d $$pkg/translations --statistics || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
