"""The cap on model calls in flight per endpoint: a semaphore in the real Redis, and a worker that keeps to it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from orchestrator.adapters.base import TransientModelError
from orchestrator.config import Settings
from orchestrator.model_slots import EndpointBusy, ModelSlots
from tests.conftest import REDIS_DB
from tests.factories import analyze_body, unique
from tests.fake_llm import FakeLLM
from tests.services import REDIS_HOST, REDIS_PORT
from tests.stack import Stack, running_stack


@pytest.fixture()
def client() -> Iterator[redis.Redis]:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    yield client
    client.close()


def slots(client: redis.Redis, limit: int, *, lease_s: float = 30, wait_s: float = 10) -> ModelSlots:
    return ModelSlots(client, f"http://{unique('endpoint')}/v1", limit=limit, lease_s=lease_s, wait_s=wait_s)


def test_no_more_than_the_limit_hold_a_slot_at_once_and_everyone_gets_one(client: redis.Redis) -> None:
    capped = slots(client, 2)
    lock = threading.Lock()
    holding, most = 0, 0

    def call(_: int) -> None:
        nonlocal holding, most
        with capped.held():
            with lock:
                holding += 1
                most = max(most, holding)
            time.sleep(0.05)
            with lock:
                holding -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(call, range(16)))

    assert most == 2
    assert client.zcard(capped.key) == 0


def test_a_slot_of_a_holder_that_died_is_free_once_its_lease_ends(client: redis.Redis) -> None:
    capped = slots(client, 1, lease_s=0.3)
    assert capped.try_acquire("a-holder-that-dies")
    assert not capped.try_acquire("another")
    time.sleep(0.4)
    assert capped.try_acquire("another")


def test_waiting_longer_than_a_call_may_is_a_transient_model_error(client: redis.Redis) -> None:
    capped = slots(client, 1, wait_s=0.2)
    assert capped.try_acquire("holder")
    started = time.monotonic()
    with pytest.raises(EndpointBusy, match="MODEL_MAX_CONCURRENCY") as busy, capped.held():
        pass
    assert isinstance(busy.value, TransientModelError)
    assert 0.2 <= time.monotonic() - started < 2


@pytest.fixture()
def capped_stack(settings: Settings, log_dir: Path) -> Iterator[tuple[Stack, FakeLLM]]:
    # A model endpoint of its own, so no other test's calls hold its slot.
    with FakeLLM(latency_s=0.2) as model:
        capped = replace(settings, model_adapter_url=model.url, model_max_concurrency=1)
        with running_stack(capped, log_dir) as stack:
            yield stack, model


def test_a_worker_sends_one_call_at_a_time_to_an_endpoint_capped_at_one(capped_stack: tuple[Stack, FakeLLM]) -> None:
    stack, model = capped_stack
    api = stack.api_client()

    bundle = api.post("/orchestrator/analyze", json=analyze_body(3)).json

    assert bundle["status"] == "ok", bundle
    assert len(model.requests) == 4
    assert model.most_in_flight == 1
