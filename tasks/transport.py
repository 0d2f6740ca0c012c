"""The Redis broker transport, with a Redis that cannot take writes counted as a lost connection.

During a failover, clients still connected to the demoted server get
``READONLY`` replies (or ``LOADING``, ``OOM``, ``TRYAGAIN``, ``CLUSTERDOWN``).
kombu's Redis transport counts those as channel errors, and a Celery worker
exits on its first one ("Unrecoverable error"). Counted as connection errors,
they make the worker reconnect and carry on once the server takes writes
again, as it does for a Redis restart. Which replies mean that is decided in
``orchestrator.errors``.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis

from orchestrator.errors import REDIS_UNAVAILABLE_ERRORS


class Transport(kombu_redis.Transport):
    connection_errors = (*kombu_redis.Transport.connection_errors, *REDIS_UNAVAILABLE_ERRORS)
