# The Makefile wraps the musicpipe CLI; `make help` lists the targets.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MUSICPIPE := $(BIN)/musicpipe
STAMP := $(VENV)/.installed
# What `make drop` uploads: the committed sample set (reference files first).
DROP ?= data_samples/songs.csv data_samples/users.csv data_samples/streams
FRESH ?=
# Which stack `up` starts: auto (Compose when a Docker engine answers), embedded or compose.
STACK ?=
ifneq ($(STACK),)
export MUSICPIPE_STACK := $(STACK)
endif
PYTEST_ARGS ?=

.PHONY: help install up down status drop wait kpis demo env promote test lint bench lock clean

help:
	@echo "make install   create .venv with the musicpipe CLI (locked dependencies)"
	@echo "make up        start the stack and create every resource (STACK=embedded|compose, FRESH=1)"
	@echo "make down      save state and stop every process the stack started"
	@echo "make status    what runs, where, which resources exist"
	@echo "make drop      upload CSVs (DROP='files or folders'; default: the sample set)"
	@echo "make wait      wait until the DAG has processed what arrived (with progress)"
	@echo "make kpis      print the KPIs in the local DynamoDB (DATE=YYYY-MM-DD GENRE=...)"
	@echo "make demo      up + drop the sample set + wait for the DAG + print the KPIs"
	@echo "make promote   plan for a real AWS account: ACCOUNT=<12 digits> (APPLY=1 applies;"
	@echo "               PROFILE=name, MWAA=environment, UPDATE_ENV=1)"
	@echo "make test      run the test suite, then the Compose stack live (COMPOSE=0: the suite only)"
	@echo "make lint      ruff check + format check, mypy (type check of src/), actionlint"
	@echo "make bench     benchmarks: print figures, write bench-results/*.json"

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; musicpipe needs Python 3.11 (set PYTHON=/path/to/python3.11)"; exit 2; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else 1)' || { echo "error: $(PYTHON) is $$($(PYTHON) --version 2>&1); musicpipe needs Python 3.11+"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(MUSICPIPE) up $(if $(FRESH),--fresh)

down: $(STAMP)
	$(MUSICPIPE) down

status: $(STAMP)
	$(MUSICPIPE) status

drop: $(STAMP)
	$(MUSICPIPE) drop $(DROP)

wait: $(STAMP)
	$(MUSICPIPE) wait

kpis: $(STAMP)
	$(MUSICPIPE) kpis $(if $(DATE),--date $(DATE)) $(if $(GENRE),--genre "$(GENRE)")

demo: up drop wait kpis

env: $(STAMP)
	@$(MUSICPIPE) env

promote: $(STAMP)
	@test -n "$(ACCOUNT)" || { echo "usage: make promote ACCOUNT=123456789012 [APPLY=1] [PROFILE=name] [MWAA=env] [UPDATE_ENV=1]"; exit 2; }
	$(MUSICPIPE) promote $(if $(APPLY),apply,plan) --account $(ACCOUNT) $(if $(PROFILE),--profile $(PROFILE)) $(if $(MWAA),--mwaa-environment $(MWAA)) $(if $(UPDATE_ENV),--update-environment)

# The suite, then the Compose stack for real (tools/test-compose.sh: skipped, saying why, where
# no engine answers and none can be started here). COMPOSE=0 runs the suite alone.
COMPOSE ?= 1
test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)
	$(if $(filter 1,$(COMPOSE)),bash tools/test-compose.sh)

# actionlint is built from its Go module the first time (tools/actionlint.sh); ACTIONLINT= skips it.
ACTIONLINT ?= tools/actionlint.sh
lint: $(STAMP)
	$(BIN)/ruff check src tests airflow bench spark_jobs
	$(BIN)/ruff format --check src tests airflow bench spark_jobs
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(if $(ACTIONLINT),$(ACTIONLINT) .github/workflows/*.yml)

bench: $(STAMP)
	cd bench && ../$(BIN)/python glue_overhead.py
	cd bench && ../$(BIN)/python etl_vs_duckdb.py $(BENCH_ARGS)
	cd bench && ../$(BIN)/python e2e_latency.py
	cd bench && ../$(BIN)/python burst.py
	cd bench && ../$(BIN)/python job_edit.py

lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --quiet -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache

# --- The Compose stack for real (tools/, docs/compose.md) ---------------------------------------
.PHONY: images test-compose

# Stand-in images from a local Debian base (no registry), cached by the hash of their inputs.
images:
	bash tools/images.sh

# The engine (Podman where none answers), the images, the live test, a clean stop.
test-compose: $(STAMP)
	bash tools/test-compose.sh
