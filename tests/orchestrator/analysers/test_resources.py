"""The analysers' resource pool: loaded on first use, the least recently used unloaded over the memory budget."""

from __future__ import annotations

import threading
import time

from orchestrator.analysers.resources import ResourcePool, resident_memory_bytes


def test_a_resource_is_loaded_once_however_many_threads_ask_for_it() -> None:
    pool = ResourcePool()
    loads: list[int] = []

    def load() -> str:
        loads.append(1)
        time.sleep(0.05)
        return "parser"

    threads = [threading.Thread(target=pool.get, args=("parser", load)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert loads == [1] and pool.get("parser", load) == "parser" and pool.loaded() == ["parser"]


def test_over_the_budget_the_least_recently_used_resource_is_unloaded_and_reloaded_when_needed() -> None:
    size = 100  # what each loaded resource costs
    pool: ResourcePool = ResourcePool(budget_bytes=250, measure=lambda: size * len(pool.loaded()))

    pool.get("parser", lambda: "parser")
    pool.get("speller", lambda: "speller")
    pool.get("parser", lambda: "parser again")  # used: the speller is now the least recent
    pool.get("lexicon", lambda: "lexicon")  # 300 > 250: something must go

    assert pool.loaded() == ["parser", "lexicon"] and pool.unloads == 1
    assert pool.get("speller", lambda: "speller, reloaded") == "speller, reloaded"
    assert pool.loaded() == ["lexicon", "speller"]  # the parser went this time


def test_the_resource_just_loaded_is_kept_even_alone_over_the_budget() -> None:
    pool = ResourcePool(budget_bytes=1)  # the real resident memory is far above one byte

    pool.get("a", lambda: "a")
    pool.get("b", lambda: "b")

    assert pool.loaded() == ["b"] and pool.unloads == 1
    status = pool.status()
    assert status["loaded"] == ["b"] and status["unloads"] == 1 and status["resident_memory_mb"] > 1


def test_without_a_budget_nothing_is_unloaded_and_resident_memory_is_measured() -> None:
    pool = ResourcePool()
    for name in "abc":
        pool.get(name, lambda name=name: name)

    assert pool.loaded() == ["a", "b", "c"] and pool.status()["budget_mb"] is None
    assert resident_memory_bytes() > 10 * 2**20
