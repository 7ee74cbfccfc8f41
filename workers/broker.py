"""kombu's Redis transport, with one Redis client per channel instead of one per call.

kombu's Redis channel builds a new ``redis.Redis`` for every publish and for
every message a worker receives and acknowledges. Building one costs about
85 µs (redis-py fills a table of some 170 response callbacks each time), which
was about a third of a worker's main process CPU per task. The client holds
nothing but its connection pool, so this channel keeps one for as long as the
channel keeps that pool (a new pool — after a fork or a lost connection — gets
a new client). The connections, and everything else, are kombu's.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _refflow_client = None

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        client = self._refflow_client
        if client is None or client.connection_pool is not pool:
            client = self._refflow_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"
