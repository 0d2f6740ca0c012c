"""Heavy resources of the builtin analysers (parsers, dictionaries, checkers), under a memory budget.

A resource is loaded on first use (``RESOURCES.get(name, load)``), once per
process, and may be warmed when a worker starts. When the process's resident
memory goes over the budget (``ORCHESTRATOR_MAX_MEMORY_GB``), the least
recently used resources are unloaded until it is under again (the one just
asked for stays); an unloaded resource is loaded again when next needed.
Without a budget nothing is unloaded.

The pool is per process, like a cache, so it is a module-level object; the
wiring sets its budget from the settings.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def resident_memory_bytes() -> int:
    """This process's resident set size (Linux ``/proc/self/statm``; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class _Loaded:
    value: Any
    load_s: float
    last_used: float


class ResourcePool:
    """Thread-safe: a resource is loaded by one thread while the others wait for it."""

    def __init__(self, budget_bytes: int | None = None, measure: Callable[[], int] = resident_memory_bytes) -> None:
        self.budget_bytes = budget_bytes
        self._measure = measure
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._lock = threading.RLock()
        self._loading: dict[str, threading.Lock] = {}
        #: How many times a resource was unloaded to keep under the budget.
        self.unloads = 0

    def get(self, name: str, load: Callable[[], T]) -> T:
        """The resource ``name``, loaded with ``load()`` if it is not loaded (then the budget is enforced)."""
        with self._lock:
            entry = self._loaded.get(name)
            if entry is not None:
                entry.last_used = time.monotonic()
                self._loaded.move_to_end(name)
                value: T = entry.value
                return value
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:  # one loader per resource; others wait, then find it loaded
            with self._lock:
                entry = self._loaded.get(name)
                if entry is not None:
                    return entry.value  # type: ignore[no-any-return]
            started = time.monotonic()
            value = load()
            load_s = time.monotonic() - started
            with self._lock:
                self._loaded[name] = _Loaded(value, load_s, time.monotonic())
                log.info("loaded analyser resource %s in %.2f s", name, load_s)
                self._enforce_budget(keep=name)
            return value

    def unload(self, name: str) -> bool:
        """Drop ``name`` (it is loaded again when next asked for); True if it was loaded."""
        with self._lock:
            dropped = self._loaded.pop(name, None) is not None
        if dropped:
            gc.collect()
        return dropped

    def loaded(self) -> list[str]:
        """Names of the loaded resources, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def status(self) -> dict[str, Any]:
        """What the stats report: resident memory, the budget, and what is loaded."""
        with self._lock:
            return {
                "resident_memory_mb": round(self._measure() / 2**20, 1),
                "budget_mb": None if self.budget_bytes is None else round(self.budget_bytes / 2**20, 1),
                "loaded": self.loaded(),
                "unloads": self.unloads,
            }

    def _enforce_budget(self, keep: str) -> None:
        if self.budget_bytes is None:
            return
        while self._measure() > self.budget_bytes:
            victims = [name for name in self._loaded if name != keep]
            if not victims:
                log.warning(
                    "resident memory %.0f MB is over the %.0f MB budget with only %s loaded",
                    self._measure() / 2**20, self.budget_bytes / 2**20, keep,
                )  # fmt: skip
                return
            victim = victims[0]
            del self._loaded[victim]
            self.unloads += 1
            gc.collect()
            log.info("unloaded analyser resource %s to keep under the memory budget", victim)


#: The process's pool (its budget is set from ORCHESTRATOR_MAX_MEMORY_GB by the wiring).
RESOURCES = ResourcePool()
