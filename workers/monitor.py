"""Broker queue depth and workers online, read straight from Redis (fast
enough for a dashboard that refreshes every few seconds; no broadcast
round-trip to the workers)."""

from __future__ import annotations

import logging
import os
import socket
import threading

import redis
from celery import signals

from refflow.workers.celery_app import DELIVERY_QUEUE, PLANNING_QUEUE

log = logging.getLogger("refflow.workers")

HEARTBEAT_KEY = "refflow:worker:"
HEARTBEAT_EVERY = 5
HEARTBEAT_TTL = 20


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def broker_stats_reader(broker_url: str):
    client = _client(broker_url)

    def stats() -> dict:
        pipe = client.pipeline()
        pipe.llen(PLANNING_QUEUE)
        pipe.llen(DELIVERY_QUEUE)
        planning, deliveries = pipe.execute()
        workers = sum(1 for _ in client.scan_iter(match=HEARTBEAT_KEY + "*", count=100))
        return {"queue_depth": {PLANNING_QUEUE: planning, DELIVERY_QUEUE: deliveries},
                "workers_online": workers}

    return stats


def start_heartbeat(broker_url: str, stop: threading.Event) -> threading.Thread:
    """Keep ``refflow:worker:<host>:<pid>`` alive while this worker runs."""
    key = f"{HEARTBEAT_KEY}{socket.gethostname()}:{os.getpid()}"
    client = _client(broker_url)

    def beat() -> None:
        while not stop.is_set():
            try:
                client.set(key, "1", ex=HEARTBEAT_TTL)
            except redis.RedisError:
                pass  # the broker is away; the worker reconnects on its own
            stop.wait(HEARTBEAT_EVERY)
        try:
            client.delete(key)
        except redis.RedisError:
            pass

    thread = threading.Thread(target=beat, name="refflow-heartbeat", daemon=True)
    thread.start()
    return thread


_stop = threading.Event()


@signals.worker_ready.connect
def _on_worker_ready(sender=None, **_):
    start_heartbeat(sender.app.conf.broker_url, _stop)


@signals.worker_shutdown.connect
def _on_worker_shutdown(**_):
    _stop.set()
