"""The Redis broker transport: a Redis that cannot take writes counts as a lost connection, and one Redis
client per connection pool sends the channel's commands.

During a failover, clients still connected to the demoted server get
``READONLY`` replies (or ``LOADING``, ``OOM``, ``TRYAGAIN``, ``CLUSTERDOWN``).
kombu's Redis transport counts those as channel errors, and a Celery worker
exits on its first one ("Unrecoverable error"). Counted as connection errors,
they make the worker reconnect and carry on once the server takes writes
again, as it does for a Redis restart. Which replies mean that is decided in
``orchestrator.errors``.

kombu builds a new ``redis.Redis`` (over the same connection pool) for every
command it sends other than its BRPOP: each task published, acknowledged or
reserved. redis-py's constructor is not cheap: in a profile it was about 7 %
of a worker's CPU and 9 % of the bridge's. A client is safe to share between
threads (it takes a connection from its pool per command), so ``Channel``
keeps one per pool; a new pool (after a reconnection) gets a new client.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis

from orchestrator.errors import REDIS_UNAVAILABLE_ERRORS


class Channel(kombu_redis.Channel):
    _commands_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool
        commands_client = self._commands_client
        if commands_client is None or commands_client.connection_pool is not pool:
            commands_client = self._commands_client = self._create_client()
        yield commands_client


class Transport(kombu_redis.Transport):
    Channel = Channel
    connection_errors = (*kombu_redis.Transport.connection_errors, *REDIS_UNAVAILABLE_ERRORS)
