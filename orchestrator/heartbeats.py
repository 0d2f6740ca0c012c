"""What each worker process reports of itself (resident memory, loaded analysers), for the stats.

Every Celery worker process publishes its status to the broker's Redis every
few seconds, under a key that expires if the process dies; any API process
reads them all. In the embedded mode there are no workers: the analysers run
in the calling process, which reports itself.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import redis

from orchestrator.analysers.resources import RESOURCES
from orchestrator.domain import JSON

KEY_PREFIX = "orchestrator:process:"
#: A process that stopped publishing disappears from the stats after this long.
TTL_S = 30


def this_process() -> JSON:
    """This process's name and its analysers' memory status."""
    return {"process": f"{socket.gethostname()}:{os.getpid()}", **RESOURCES.status()}


class Heartbeats:
    def __init__(self, client: redis.Redis | None) -> None:
        self.client = client

    def publish(self) -> None:
        """Publish this process's status (a no-op without Redis)."""
        if self.client is None:
            return
        status = this_process()
        self.client.set(KEY_PREFIX + status["process"], json.dumps(status), ex=TTL_S)

    def read(self) -> list[JSON]:
        """The statuses of the live worker processes, or this process's own in the embedded mode."""
        if self.client is None:
            return [this_process()]
        keys = sorted(self.client.scan_iter(match=KEY_PREFIX + "*", count=500))
        values: list[Any] = self.client.mget(keys) if keys else []
        return [json.loads(value) for value in values if value is not None]
