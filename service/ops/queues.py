"""The broker's queues and the workers' heartbeats as the operator sees them:
queue depth and workers online, read straight from Redis (fast enough for a
dashboard that refreshes every few seconds; no broadcast round trip to the
workers, and no Celery in the web process)."""

from __future__ import annotations

import redis

PLANNING_QUEUE = "refflow.planning"
DELIVERY_QUEUE = "refflow.deliveries"
HEARTBEAT_KEY = "refflow:worker:"  # + host:pid, kept alive by each worker


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def broker_stats_reader(broker_url: str):
    """A function that reads ``{"queue_depth": {queue: n}, "workers_online": n}``."""
    client = redis_client(broker_url)

    def stats() -> dict:
        pipe = client.pipeline()
        pipe.llen(PLANNING_QUEUE)
        pipe.llen(DELIVERY_QUEUE)
        planning, deliveries = pipe.execute()
        workers = sum(1 for _ in client.scan_iter(match=HEARTBEAT_KEY + "*", count=100))
        return {"queue_depth": {PLANNING_QUEUE: planning, DELIVERY_QUEUE: deliveries},
                "workers_online": workers}

    return stats
