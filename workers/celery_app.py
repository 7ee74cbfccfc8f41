"""The Celery app, configured from the same REFFLOW_* settings as the web app.

The settings follow ../shared/reliability.md §3: late acks with requeue on
worker loss, prefetch 1, a visibility timeout well above the longest task,
JSON only, ids (never PHI) in messages, no results stored, socket timeouts so
a broker outage never hangs a caller.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from refflow.config import Settings, load_settings
from refflow.ops.queues import DELIVERY_QUEUE, PLANNING_QUEUE
from refflow.pipeline import outbox

ROUTES = {
    outbox.BUILD_PLAN: {"queue": PLANNING_QUEUE},
    outbox.RENDER: {"queue": PLANNING_QUEUE},
    outbox.FINALIZE: {"queue": PLANNING_QUEUE},
    outbox.DELIVER: {"queue": DELIVERY_QUEUE},
    outbox.CHECK_DELIVERY: {"queue": DELIVERY_QUEUE},
    outbox.READ_FAX: {"queue": PLANNING_QUEUE},
    outbox.SEND_WEBHOOK: {"queue": DELIVERY_QUEUE},
}


def visibility_timeout(settings: Settings) -> int:
    """Well above twice the longest task (reliability.md K3, K4)."""
    return 2 * settings.task_time_limit + 600


def celery_config(settings: Settings) -> dict:
    limit = settings.task_time_limit
    transport = {"visibility_timeout": visibility_timeout(settings), "socket_timeout": 5,
                 "socket_connect_timeout": 5, "health_check_interval": 25}
    broker_url = settings.broker_url or "redis://127.0.0.1:6379/0"
    return {
        "broker_url": broker_url,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 5,
        "result_backend": None,
        "result_backend_transport_options": {"visibility_timeout": visibility_timeout(settings)},
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        # A broker outage must not stop a send half-way (that makes an email
        # "in doubt"): running tasks finish against the database, and their
        # messages, unacknowledged, come back and find the work done.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_soft_shutdown_timeout": 20,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "task_soft_time_limit": max(1, limit - min(30, limit // 5)),
        "task_time_limit": limit,
        "visibility_timeout": visibility_timeout(settings),
        "task_publish_retry": True,
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0,
                                      "interval_step": 0.2, "interval_max": 0.5},
        # One direct exchange per queue: a message reaches exactly one queue.
        "task_queues": [Queue(name, Exchange(name, type="direct"), routing_key=name)
                        for name in (PLANNING_QUEUE, DELIVERY_QUEUE)],
        "task_default_queue": PLANNING_QUEUE,
        "task_routes": ROUTES,
        "worker_max_memory_per_child": 400_000,  # KiB: recycle a child that bloats
    }


def create_celery(settings: Settings | None = None) -> Celery:
    """A Celery app. Without ``settings`` they are read from the environment when
    the app is first configured (so importing this module reads nothing)."""
    app = Celery("refflow", set_as_current=False)
    if settings is not None:
        app.conf.update(celery_config(settings))
        app.refflow_settings = settings
    else:
        def _configure() -> None:
            app.refflow_settings = load_settings()
            app.conf.update(celery_config(app.refflow_settings))

        app.on_configure.connect(lambda **_: _configure(), weak=False)
    return app
