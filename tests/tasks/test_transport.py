"""The broker transport on the real Redis: one client per connection pool for the channel's commands."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from kombu import Connection

from tasks.transport import Transport
from tests.factories import unique


def test_a_channel_sends_its_commands_through_one_client_per_connection_pool(redis_url: str) -> None:
    with Connection(redis_url, transport=Transport) as connection:
        channel = connection.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        with channel.conn_or_acquire(client=channel.client) as given:
            assert given is channel.client

        channel._disconnect_pools()  # as a reconnection does: a new pool

        with channel.conn_or_acquire() as renewed:
            assert renewed is not first and renewed.connection_pool is channel.pool
            assert renewed.ping()


def test_messages_published_from_many_threads_over_one_channel_all_arrive_once(redis_url: str) -> None:
    with Connection(redis_url, transport=Transport) as connection, connection.SimpleQueue(unique("transport")) as queue:

        def publish(thread: int) -> None:
            for number in range(50):
                queue.put({"n": f"{thread}.{number}"})

        with ThreadPoolExecutor(8) as threads:
            list(threads.map(publish, range(8)))
        received = []
        while len(received) < 400:
            message = queue.get(timeout=5)
            received.append(message.payload["n"])
            message.ack()

        with pytest.raises(queue.Empty):  # nothing twice
            queue.get(timeout=0.5)
    assert sorted(received) == sorted(f"{thread}.{number}" for thread in range(8) for number in range(50))
