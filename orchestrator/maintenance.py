"""The background duties of every Celery worker process: publish the dead-letter outbox,
sweep for stuck runs, and report the process's status.

They run on one daemon thread, so they need no scheduler process (no Celery
beat) and keep working whenever at least one worker is up. Several workers
doing them at once is harmless (row locks and compare-and-sets).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestrator.dead_letters import DeadLetterSink
from orchestrator.errors import Verdict, classify
from orchestrator.metrics import DEAD_LETTER_PUBLISH_FAILURES
from orchestrator.store import RunStore

log = logging.getLogger(__name__)

#: Seconds between two looks at the outbox (a failed run wakes it at once).
OUTBOX_INTERVAL_S = 2.0
#: Seconds between two status reports of a worker process.
HEARTBEAT_INTERVAL_S = 10.0


def publish_outbox(store: RunStore, sink: DeadLetterSink, batch: int = 100) -> int:
    """Send every dead letter waiting in the outbox; return how many were acknowledged.

    Raises what the sink or the database raised; the letters not yet
    acknowledged stay in the outbox for the next call.
    """
    total = 0
    while sent := store.publish_outbox(sink.publish, limit=batch):
        total += sent
    return total


@dataclass
class Duty:
    """Something to do every ``every_s`` seconds (0: never); ``urgent`` duties also run when woken."""

    name: str
    run: Callable[[], object]
    every_s: float
    urgent: bool = False
    #: Counted when the duty fails.
    on_failure: Callable[[], object] = lambda: None
    next_at: float = 0.0


def outbox_duty(store: RunStore, sink: DeadLetterSink) -> Duty:
    return Duty(
        "publishing the dead-letter outbox",
        lambda: publish_outbox(store, sink),
        OUTBOX_INTERVAL_S,
        urgent=True,
        on_failure=DEAD_LETTER_PUBLISH_FAILURES.inc,
    )


class Maintenance:
    """A daemon thread doing its duties, each when due; a failed duty is logged and tried again when next due."""

    def __init__(self, duties: Sequence[Duty]) -> None:
        self.duties = [duty for duty in duties if duty.every_s > 0]
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="orchestrator-maintenance", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        self._wake.set()
        self._thread.join(timeout_s)

    def wake(self) -> None:
        """Do the urgent duties now (a dead letter was just recorded)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            woken = self._wake.is_set()
            self._wake.clear()
            now = time.monotonic()
            for duty in self.duties:
                if now >= duty.next_at or (woken and duty.urgent):
                    self._attempt(duty)
                    duty.next_at = time.monotonic() + duty.every_s
            soonest = min((duty.next_at for duty in self.duties), default=time.monotonic() + OUTBOX_INTERVAL_S)
            self._wake.wait(max(soonest - time.monotonic(), 0.05))

    def _attempt(self, duty: Duty) -> None:
        try:
            duty.run()
        except Exception as exc:
            duty.on_failure()
            if classify(exc) is Verdict.INFRASTRUCTURE:
                log.warning("%s failed; trying again later: %s", duty.name, exc)
            else:
                log.exception("%s failed; trying again later", duty.name)
