# The README's two commands: `make demo` (the main job, no AWS account) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Placeholders for the demo's ${VARIABLES}: compiling needs no AWS account.
DEMO_VARS := --env-file pipelines/example.env

.PHONY: setup demo compile test bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

node_modules/.bin/asl-validator: package.json
	npm install --no-audit --no-fund --silent
	touch $@

setup: $(STAMP) node_modules/.bin/asl-validator

compile: $(STAMP)
	$(BIN)/stepkit validate pipelines/*.yaml $(DEMO_VARS)
	$(BIN)/stepkit compile pipelines/predict_age.yaml --out out/predict_age $(DEMO_VARS)

# The README's first command: validate and compile, then the whole pipeline on this machine (DuckDB + worker processes) on a
# generated demo source of DEMO_ROWS rows, cached under $(WORK)/demo/ after the first run.
DEMO_ROWS ?= 1000000
WORK ?= .work

demo: compile
	$(BIN)/stepkit run pipelines/predict_age.yaml --local --workdir $(WORK) --demo-rows $(DEMO_ROWS) $(DEMO_VARS)

test: setup
	$(BIN)/python -m pytest -n 2 tests

bench: $(STAMP)
	$(BIN)/python benchmarks/compile_speed.py

clean:
	rm -rf out .pytest_cache
