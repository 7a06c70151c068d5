# Two commands: `make run` (server + worker + demo data) and `make test` (the whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install lint migrate clean crewai-venv chromium e2e

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	DEBUG=1 $(BIN)/python manage.py migrate --noinput

# Web server on 127.0.0.1:8000 and a django-q2 worker (`manage.py worker`, which stops cleanly on the
# group's signal) together; Ctrl-C stops both.
run: install
	DEBUG=1 $(BIN)/python manage.py migrate --noinput
	DEBUG=1 $(BIN)/python manage.py load_demo
	@echo "Starting web server on http://127.0.0.1:8000 and a worker (Ctrl-C stops both)"
	@DEBUG=1 bash -c 'trap "kill 0" EXIT; $(BIN)/python manage.py worker & $(BIN)/python manage.py runserver 127.0.0.1:8000 --noreload'

test: install chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser tests drive Debian's Chromium with Playwright (never a downloaded browser).
chromium:
	@test -x /usr/bin/chromium || tests/browser/install-chromium.sh

# A separate virtualenv with CrewAI and the installed client (hitl-client, never the server) for the
# integration test; CI sets CREWAI_PYTHON=.venv-crewai/bin/python so `make test` runs it.
crewai-venv: .venv-crewai/.installed

.venv-crewai/.installed: tests/integration/crewai-requirements.txt hitl/client/pyproject.toml $(wildcard hitl/client/hitl_client/*.py)
	test -x .venv-crewai/bin/python || $(PYTHON) -m venv .venv-crewai
	.venv-crewai/bin/pip install --quiet --upgrade pip
	.venv-crewai/bin/pip install --quiet -r tests/integration/crewai-requirements.txt ./hitl/client
	.venv-crewai/bin/pip install --quiet --force-reinstall --no-deps ./hitl/client  # new code, same version
	rm -rf hitl/client/build hitl/client/*.egg-info
	touch .venv-crewai/.installed

# The production end-to-end test (tests/production/e2e.py): wheels in fresh virtualenvs, `hitl serve`
# and two `hitl worker`s on PostgreSQL + Redis. .ci/run runs it after starting both.
e2e: install
	$(BIN)/python tests/production/e2e.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=1 $(BIN)/mypy .
	DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) .venv-crewai db.sqlite3 staticfiles var
