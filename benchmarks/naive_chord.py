"""The baseline of benchmarks/side_by_side.py: the chord a user would write in sixty lines.

Four Celery tasks each make one POST to an OpenAI-compatible /chat/completions; a callback merges the four
answers and INSERTs them into ``naive_results``. No validation, idempotency, retries, partial results, audit
of model calls, dead letters or backpressure. Configured by NAIVE_* variables; run from benchmarks/:

    celery -A naive_chord worker -P threads -c 32        # the tasks
    gunicorn -k gthread --threads 32 naive_chord:api     # POST /analyze: launch the chord, wait, answer
    python naive_chord.py                                # Kafka: one chord per message, never waits
"""

# mypy: disallow-untyped-decorators=False, disallow-untyped-calls=False
from __future__ import annotations

import json
import os
import uuid
from typing import Any

import requests
from celery import Celery, chord
from flask import Flask, request
from kafka import KafkaConsumer
from sqlalchemy import JSON, Column, DateTime, MetaData, String, Table, create_engine, func

WORKERS = ("summary", "argument", "implication_sentiment", "logic_bias")
BROKER = os.environ.get("NAIVE_BROKER_URL", "redis://127.0.0.1:6379/12")
app = Celery("naive", broker=BROKER, backend=BROKER)
app.conf.update(task_default_queue=os.environ.get("NAIVE_QUEUE", "naive"), worker_prefetch_multiplier=1)
app.conf.update(task_acks_late=True, task_serializer="json", result_serializer="json")
engine = create_engine(os.environ.get("NAIVE_DATABASE_URL", "postgresql://postgres@127.0.0.1/naive"))
results = Table(
    "naive_results",
    MetaData(),
    Column("event_id", String, primary_key=True),
    Column("context_id", String),
    Column("result", JSON),
    Column("stored_at", DateTime(timezone=True), server_default=func.clock_timestamp()),
)
http = requests.Session()  # one pooled session for all the worker's threads
http.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))


@app.task(name="naive.analyse")
def analyse(worker: str, event: dict[str, Any]) -> Any:
    lines = [f"[{s['id']}] {s.get('speaker') or 'unknown'}: {s['text']}" for s in event["segments"]]
    messages = [
        {"role": "system", "content": f"You are the {worker} analyst of a transcript. Answer with one JSON object."},
        {"role": "user", "content": "Transcript:\n" + "\n".join(lines)},
    ]
    body = {"model": os.environ.get("NAIVE_MODEL_NAME", "gpt-4o-mini"), "messages": messages, "temperature": 0}
    body["response_format"] = {"type": "json_object"}
    # The header tells the fake model which worker's answer to make up; a real model would not need it.
    answer = http.post(
        os.environ["NAIVE_MODEL_URL"] + "/chat/completions",
        json=body,
        timeout=30,
        headers={"X-Orchestrator-Worker": worker},
    )
    answer.raise_for_status()
    return json.loads(answer.json()["choices"][0]["message"]["content"])


@app.task(name="naive.store")
def store(answers: list[Any], event: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {"event_id": event["event_id"], "context_id": event["context_id"], "status": "ok"}
    merged.update(zip(WORKERS, answers, strict=True))
    with engine.begin() as connection:
        connection.execute(
            results.insert().values(event_id=event["event_id"], context_id=event["context_id"], result=merged)
        )
    return merged


def launch(event: dict[str, Any]) -> Any:
    return chord(analyse.s(worker, event) for worker in WORKERS)(store.s(event))


api = Flask(__name__)


@api.post("/analyze")
def analyze() -> dict[str, Any]:
    event = {"event_id": uuid.uuid4().hex, **request.get_json()}
    result: dict[str, Any] = launch(event).get(timeout=120)
    return result


def consume() -> None:
    consumer = KafkaConsumer(
        os.environ["NAIVE_TOPIC"],
        bootstrap_servers=os.environ["NAIVE_KAFKA"],
        group_id=os.environ.get("NAIVE_GROUP", "naive"),
        auto_offset_reset="earliest",
    )
    for message in consumer:
        launch(json.loads(message.value))


if __name__ == "__main__":
    consume()
