# ml_assets: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster
DAGSTER_PORT ?= 3000
MLFLOW_PORT ?= 5000
# The packages whose versions `make versions` (and so CI) prints.
VERSIONED := dagster dagster-webserver dagster-mlflow dagster-postgres dagster-celery mlflow \
	lightgbm pandera evidently

.DEFAULT_GOAL := help
.PHONY: help venv lock versions run prod-up prod-env prod-down ci test dev mlflow lint bench promote approve reject rollback reconcile score audit lineage clean

help: ## List the targets
	@grep -hE '^[a-z_-]+:.*## ' $(MAKEFILE_LIST) \
		| sed -e 's/$$(DAGSTER_PORT)/$(DAGSTER_PORT)/g' -e 's/$$(MLFLOW_PORT)/$(MLFLOW_PORT)/g' \
		| awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# The environment is uv.lock's: every transitive dependency pinned, the same on every machine.
# uv is pinned too (the version that writes uv.lock) and installed by the machine's pip into a
# folder of its own, .uv/VERSION, not into .venv: `uv sync` removes from .venv all that uv.lock
# does not list. uv uses the interpreter of .venv, made from $(PYTHON), and never downloads one.
UV_VERSION := 0.13.9
UV_HOME := .uv/$(UV_VERSION)
UV := $(UV_HOME)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON_DOWNLOADS := never
# Bytecode compiled at install, as pip does: where PYTHONDONTWRITEBYTECODE is set (as on this
# machine) Python never writes it, and every process would compile Dagster, MLflow and the rest
# anew (up to 10 s of CPU each). UV_COMPILE_BYTECODE=0 make venv skips it (about 30 s here).
export UV_COMPILE_BYTECODE ?= 1
# LightGBM's OpenMP spin count is set by the code that imports it (training/model.py).

# MLflow 3 starts a usage-telemetry client in every process that imports it (a thread that
# fetches its configuration from the internet, a flush of the recorded events at exit). Like
# Dagster's (dagster.yaml: telemetry), it is off for every process make starts: the pipeline
# sends nothing anywhere it was not pointed at. A value in the environment wins.
export MLFLOW_DISABLE_TELEMETRY ?= true

$(UV):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --upgrade --target $(UV_HOME) uv==$(UV_VERSION)

# --locked: install uv.lock as it is (the project itself editable) and stop if it no longer
# matches pyproject.toml (then `make lock`).
$(STAMP): pyproject.toml uv.lock | $(UV)
	test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	$(UV) sync --locked --extra dev --python $(BIN)/python
	touch $(STAMP)

venv: $(STAMP) ## Build .venv from uv.lock with the project and its dev tools

lock: | $(UV) ## Update uv.lock to pyproject.toml; one package to its newest: make lock UPGRADE=pandas
	$(UV) lock --python $(PYTHON) $(if $(UPGRADE),--upgrade-package $(UPGRADE))

versions: $(STAMP) ## Print the installed versions of the Dagster family, MLflow, LightGBM, pandera, evidently
	@$(UV) --version
	@$(BIN)/python -c 'import importlib.metadata as m, platform, sys; \
		rows = [("python", platform.python_version())] + [(n, m.version(n)) for n in sys.argv[1:]]; \
		print("\n".join(f"{n:<18} {v}" for n, v in rows))' $(VERSIONED)

run: $(STAMP) ## Generate the demo data if absent and materialise every asset end to end
	$(BIN)/python -m ml_assets.cli.run

prod-up: $(STAMP) ## Start the production servers on 127.0.0.1 (MLflow on Postgres with basic auth, Dagster webserver and daemon); secrets from the environment
	$(BIN)/python -m ml_assets.cli.prod up

prod-env: ## Print the exports that point this shell's make run, promote... at them: eval "$$(make -s prod-env)"
	@$(BIN)/python -m ml_assets.cli.prod env

prod-down: ## Stop the servers prod-up started, by their PIDs
	$(BIN)/python -m ml_assets.cli.prod down

ci: $(STAMP) ## A pull request's asset checks on an ephemeral instance, against production: make ci [CHAMPION=model/folder]
	$(BIN)/python -m ml_assets.cli.ci $(if $(CHAMPION),--champion-model "$(CHAMPION)")

# --maxschedchunk 1: tests are handed out one at a time, so the long flows (collected first)
# spread over the workers instead of arriving at the first one in a single chunk.
# The tests' scratch (tmp_path: SQLite instances, MLflow stores, batches; and every temporary
# folder of their child processes) goes to a fresh folder under TEST_TMPDIR: RAM-backed
# /dev/shm where it has 2 GB free (a run writes about 350 MB), else $TMPDIR or /tmp. On disk,
# the fsyncs left the cores idle, and the suite took 264 s instead of 241 s here. The folder
# is removed when the tests pass and kept, and named, when one fails.
# TEST_TMPDIR=/tmp make test puts it on disk.
TEST_TMPDIR ?= $(shell [ -d /dev/shm ] && [ "$$(df -Pk /dev/shm | awk 'NR==2 {print $$4}')" -gt 2000000 ] \
	&& echo /dev/shm || echo "$${TMPDIR:-/tmp}")
test: $(STAMP) ## Run the test suite, one worker per core
	@scratch=$$(mktemp -d -p "$(TEST_TMPDIR)" ml_assets_tests.XXXXXX) \
		&& echo "test scratch: $$scratch" \
		&& TMPDIR=$$scratch $(BIN)/python -m pytest -q -n auto --maxschedchunk 1; \
	status=$$?; \
	if [ $$status -eq 0 ]; then rm -rf "$$scratch"; else echo "kept for inspection: $$scratch"; fi; \
	exit $$status

# A dagster-celery worker for training_job and evaluation_job (pipeline.yaml `execution:`), in the
# foreground; one per NAME, e.g. two: make celery-worker NAME=w1 & make celery-worker NAME=w2.
.PHONY: celery-worker
celery-worker: $(STAMP) ## Start a Celery worker for the training and evaluation jobs: make celery-worker NAME=w1
	$(BIN)/python -m ml_assets.cli.celery_worker --name "$(NAME)" $(if $(CONCURRENCY),--concurrency $(CONCURRENCY))

dev: $(STAMP) ## Start the Dagster UI on 127.0.0.1:$(DAGSTER_PORT)
	$(BIN)/python -m ml_assets.cli.instance
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(DAGSTER_PORT)

mlflow: $(STAMP) ## Start the MLflow UI on the embedded store, on 127.0.0.1:$(MLFLOW_PORT)
	$(BIN)/mlflow ui --backend-store-uri "$$($(BIN)/python -m ml_assets.cli.instance --mlflow-uri)" \
		-h 127.0.0.1 -p $(MLFLOW_PORT)

lint: $(STAMP) ## Lint, check formatting and the import contracts (the house rules)
	$(BIN)/ruff check ml_assets ml_assets_tests benchmarks
	$(BIN)/ruff format --check ml_assets ml_assets_tests benchmarks
	$(BIN)/lint-imports

bench: $(STAMP) ## Measure import time, make run wall time and orchestration overhead
	$(BIN)/python benchmarks/bench_run.py

promote approve: $(STAMP) ## Approve VERSION as APPROVER (production moves once approvals suffice): make promote VERSION=3 APPROVER=ana
	$(BIN)/python -m ml_assets.cli.run approve --version "$(VERSION)" --approver "$(APPROVER)" --reason "$(REASON)"

reject: $(STAMP) ## Reject VERSION as APPROVER with a REASON: make reject VERSION=3 APPROVER=ana REASON="..."
	$(BIN)/python -m ml_assets.cli.run reject --version "$(VERSION)" --approver "$(APPROVER)" --reason "$(REASON)"

rollback: $(STAMP) ## Roll production back one version as APPROVER with a REASON: make rollback APPROVER=olu REASON="..."
	$(BIN)/python -m ml_assets.cli.run rollback --approver "$(APPROVER)" --reason "$(REASON)" --from-version "$(FROM)"

reconcile: $(STAMP) ## Bring the MLflow aliases to the desired state in deploy/ and report drift
	$(BIN)/python -m ml_assets.cli.run reconcile

score: $(STAMP) ## Score a batch with production and the canary, and measure both: make score [BATCH=2026-04-30]
	$(BIN)/python -m ml_assets.cli.run score $(if $(BATCH),--batch "$(BATCH)")

lineage: $(STAMP) ## Print VERSION's chain from deployments back to data files and commit: make lineage VERSION=2
	$(BIN)/python -m ml_assets.lineage "$(VERSION)"

audit: $(STAMP) ## Verify the audit log's hash chain of every model
	$(BIN)/python -m ml_assets.cli.audit

clean: ## Remove generated state (.dagster, MLflow store, generated data); keeps .venv
	rm -rf .dagster data/mlflow data/raw data/validation data/sketches data/quarantine \
		data/reports data/features data/models data/audit \
		deploy/staging.yaml deploy/production.yaml
