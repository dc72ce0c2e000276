# regionops — every command a user needs. `make run` and `make test` set themselves up.
SHELL := /bin/bash
VENV ?= .venv
EXTRAS ?= dev,cpu
PY := $(VENV)/bin/python
# The install stamp changes with pyproject.toml, so a dependency change reinstalls.
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export REGIONOPS_HOME ?= $(CURDIR)/.regionops
# Telemetry off for every tool (docs/design.md §8); components.settings sets the same at import.
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
PYTEST_ARGS ?= --durations=25  # the slowest tests, listed in every CI log
# pytest-xdist workers; whole files go to one worker (--dist loadfile), so a module's trained
# model or server fixture is built once. Each worker gets cores/workers torch threads (conftest).
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile

.PHONY: help setup run test test-fast bench bench-real ui ui-screenshots serve lint clean deploy browser

help:
	@echo "make run    - set up .venv and run the full Prefect pipeline on the embedded stack"
	@echo "make test   - set up .venv and run every test (unit, slow, integration)"
	@echo "make ui     - MLflow UI on http://127.0.0.1:5000"
	@echo "make ui-screenshots - Prefect + MLflow UI screenshots of the last make run into reports/ui/"
	@echo "make serve  - the champion over HTTP on http://127.0.0.1:5001 (SERVE_ENV=virtualenv: its own env)"
	@echo "make bench  - benchmarks into reports/"
	@echo "make bench-real - evaluate data/model on real Debian-doc PDFs (reports/real.json, real.md)"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: 2.13.0 is the CPU build on this machine's disk; a bare `torch` pulls GBs of CUDA wheels.
	$(PY) -m pip install -q torch==2.13.0
	# faiss-cpu through the `cpu` extra; a CUDA machine uses EXTRAS=dev,gpu instead (never both).
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	@rm -f $(VENV)/.installed-*
	@touch $@

run: $(STAMP)
	$(PY) -m flows.pipeline

test: $(STAMP)
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest $(XDIST) -m "not slow and not integration" $(PYTEST_ARGS)

# The real-PDF judge: Debian documentation packages split by package into dev/ and train/
# (params.yaml realdocs; built once by scripts/real_docs.py, apt-get needs root), then the
# trained model evaluated on dev/. `make bench` times question -> regions on dev/ when it is built.
REALDOCS ?= $(REGIONOPS_HOME)/realdocs

# Real-page latency (issue 25) is timed beside the synthetic figure in the same run, with the region
# settings chosen on the real train set (`make bench-real` writes them) when they exist. Override,
# e.g.: make bench BENCH_MODEL=/path/to/export REAL_QUESTIONS=... REGIONS_FROM=... (ADR 29).
BENCH_MODEL ?= data/model
REAL_QUESTIONS ?= $(REALDOCS)/dev/questions.jsonl
REGIONS_FROM ?= $(wildcard reports/real_regions.json)

bench: $(STAMP)
	@test -f $(REAL_QUESTIONS) || echo "make bench: no real pages ($(REAL_QUESTIONS) is missing; make bench-real builds it): latency on real pages is not measured"
	$(VENV)/bin/regionops bench --out reports --model $(BENCH_MODEL) $(if $(REGIONS_FROM),--regions-from $(REGIONS_FROM)) $(if $(wildcard $(REAL_QUESTIONS)),--real-docs $(REALDOCS)/dev/docs --real-questions $(REAL_QUESTIONS))

# Region settings (the region rule included) are chosen on the real train set, never on dev (ADR 27).
bench-real: $(STAMP)
	test -f $(REALDOCS)/dev/questions.jsonl || $(PY) scripts/real_docs.py --out $(REALDOCS)
	$(VENV)/bin/regionops tune-regions --docs $(REALDOCS)/train/docs --questions $(REALDOCS)/train/questions.jsonl --model data/model --out reports/real_regions.json
	$(VENV)/bin/regionops evaluate --docs $(REALDOCS)/dev/docs --questions $(REALDOCS)/dev/questions.jsonl --model data/model --regions-from reports/real_regions.json --out reports/real
	cp reports/real/metrics.json reports/real.json && cp reports/real/report.md reports/real.md

# Register the Prefect deployments (pipeline, retrain on cron, landing watcher) on PREFECT_API_URL.
deploy: $(STAMP)
	$(VENV)/bin/regionops deploy

# No background job workers (they cost CPU): the UI is all `make ui` needs.
ui: $(STAMP)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui --backend-store-uri "sqlite:///$(REGIONOPS_HOME)/mlflow.db" --host 127.0.0.1 --port 5000

# What the Prefect and MLflow UIs show for the last `make run` (REGIONOPS_HOME's databases):
# screenshots, pages.json and ui_excerpt.md in reports/ui/. Servers it has to start run on
# 127.0.0.1 and stop when it is done; needs the browser (make browser).
ui-screenshots: $(STAMP)
	$(PY) scripts/ui_screenshots.py --home "$(REGIONOPS_HOME)" --out reports/ui

# The champion over HTTP. SERVE_ENV=local (default) runs it in this venv; SERVE_ENV=virtualenv
# (or uv) builds the model's own environment from its requirements.txt (PyPI; minutes the first
# time, cached in ~/.mlflow/envs). The venv's bin goes first on PATH: mlflow execs uvicorn from it.
MODEL_NAME ?= regionops
SERVE_ENV ?= local
SERVE_PORT ?= 5001
serve: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" MLFLOW_TRACKING_URI="sqlite:///$(REGIONOPS_HOME)/mlflow.db" \
	  $(VENV)/bin/mlflow models serve -m "models:/$(MODEL_NAME)@champion" --env-manager $(SERVE_ENV) \
	  -h 127.0.0.1 -p $(SERVE_PORT) -w 1

# Debian's chromium + chromedriver for the MLflow UI browser test (idempotent; apt, needs root or sudo).
browser:
	bash scripts/install_browser.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache  # the import layers in pyproject.toml (also run by `make test`)

clean:
	rm -rf data reports .regionops
