# ml_assets: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster
DAGSTER_PORT ?= 3000
MLFLOW_PORT ?= 5000

.DEFAULT_GOAL := help
.PHONY: help venv run test dev mlflow lint bench promote approve reject rollback reconcile score audit lineage clean

help: ## List the targets
	@grep -hE '^[a-z_-]+:.*## ' $(MAKEFILE_LIST) \
		| sed -e 's/$$(DAGSTER_PORT)/$(DAGSTER_PORT)/g' -e 's/$$(MLFLOW_PORT)/$(MLFLOW_PORT)/g' \
		| awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## Build .venv with the project and its dev tools

run: $(STAMP) ## Generate the demo data if absent and materialise every asset end to end
	$(BIN)/python -m ml_assets.cli.run

test: $(STAMP) ## Run the test suite, one worker per core
	$(BIN)/python -m pytest -q -n auto

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
