"""The worker's heartbeat: ``refflow:worker:<host>:<pid>`` lives in Redis while
the worker runs, so the dashboard counts workers online (``ops.queues``)."""

from __future__ import annotations

import logging
import os
import socket
import threading

import redis
from celery import signals

from refflow.ops.queues import HEARTBEAT_KEY, redis_client

log = logging.getLogger("refflow.workers")

HEARTBEAT_EVERY = 5
HEARTBEAT_TTL = 20


def start_heartbeat(broker_url: str, stop: threading.Event) -> threading.Thread:
    """Keep ``refflow:worker:<host>:<pid>`` alive while this worker runs."""
    key = f"{HEARTBEAT_KEY}{socket.gethostname()}:{os.getpid()}"
    client = redis_client(broker_url)

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
