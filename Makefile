# Every target works on a fresh clone: the first one run creates .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make demo: one analysis end to end, embedded (in-process chord, SQLite, builtin model)
demo: install
	cd $(CURDIR) && env -u CELERY_BROKER_URL -u MODEL_ADAPTER_URL \
		DATABASE_URL=sqlite:///$(CURDIR)/demo.db $(BIN)/orchestrator analyze examples/debate.json

## make test: the whole suite against real PostgreSQL, Redis, Celery and Kafka
test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/realtime_overhead.py

clean:
	rm -rf $(VENV) *.egg-info demo.db*
