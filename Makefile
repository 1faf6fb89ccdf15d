# Agar Run Manager. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app wsgi
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv run test lint format bench bench-api clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

venv: $(STAMP) ## Create .venv and install the pinned dependencies

run: venv ## Migrate the database, create the first admin and demo runs, start web + worker + scheduler
	$(FLASK) db upgrade
	$(FLASK) users ensure-admin
	$(FLASK) demo seed --first-start
	$(PY) scripts/run.py

test: venv ## Lint, then run the whole suite on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set
	$(VENV)/bin/ruff check .
	env -u TEST_DATABASE_URL $(PY) -m pytest -q
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== again on PostgreSQL ($$TEST_DATABASE_URL)"; \
		$(PY) -m pytest -q; \
	else echo "(TEST_DATABASE_URL not set: PostgreSQL pass skipped; .ci/run sets it)"; fi

lint: venv ## Check style with ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv ## Reformat with ruff
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: venv ## Archive/restore benchmark against tar (100 MB and 1 GB runs); writes bench/RESULTS.md
	@for tool in pigz zstd; do command -v $$tool >/dev/null || echo "note: $$tool is not installed, its rows are skipped (apt-get install $$tool)"; done
	$(PY) -m bench.archive

bench-api: venv ## API latency at 1,000,000 runs in PostgreSQL (needs wrk and a local PostgreSQL); writes bench/RESULTS.md
	@command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk"; exit 1; }
	$(PY) -m bench.api

clean: ## Remove the virtualenv and local data (instance/, scraper_data/)
	rm -rf $(VENV) instance scraper_data
