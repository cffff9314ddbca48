# Two commands on a fresh machine with Python 3.11:  make run  ·  make test
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_MEMBERS ?= 3000

.PHONY: install run test lint format migrate demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py seed_demo --if-empty --members $(DEMO_MEMBERS)
	$(PY) manage.py recompute_rfm --rebuild-stats
	$(PY) manage.py seed_demo_segments
	$(PY) manage.py seed_demo_gateways
	$(PY) manage.py seed_demo_offers
	$(PY) manage.py seed_demo_communications
	$(PY) manage.py seed_demo_chains
	$(PY) manage.py seed_demo_regular
	$(PY) manage.py seed_demo_portal

# Web + Celery worker + beat on the embedded default (SQLite, filesystem broker).
run: demo
	PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://$(HOST):$(PORT)} $(PY) manage.py run_all --host $(HOST) --port $(PORT)

test: install
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: install
	$(PY) bench/ledger.py
	$(PY) bench/seed.py
	$(PY) bench/segments.py
	$(PY) bench/mailing.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
