"""What the worker tells the operator: task durations, outcomes and retries as
Prometheus metrics (``REFFLOW_WORKER_METRICS_PORT``), JSON logs, and the
request id that started the work on every task's log lines."""

from __future__ import annotations

import logging
import os
import time

from prometheus_client import CollectorRegistry

from refflow.ops.metrics import (
    MULTIPROC_ENV,
    TASK_DURATION,
    TASK_RETRIES,
    TASKS,
    enable_multiprocess,
    mark_process_dead,
)

log = logging.getLogger("refflow.metrics")


def install_task_signals() -> None:
    """Task durations, outcomes and retries; the request id into every task."""
    from celery import signals

    from refflow.ops.logging import REQUEST_ID_HEADER, request_id_var, task_var

    if getattr(install_task_signals, "done", False):
        return
    install_task_signals.done = True
    started: dict[str, float] = {}

    @signals.setup_logging.connect(weak=False)
    def _json_logs(loglevel=None, **_):
        from refflow.ops.logging import configure_logging

        level = loglevel if isinstance(loglevel, str) else logging.getLevelName(loglevel or 20)
        configure_logging(level)

    @signals.before_task_publish.connect(weak=False)
    def _carry_request_id(headers=None, **_):
        rid = request_id_var.get()
        if rid and headers is not None and REQUEST_ID_HEADER not in headers:
            headers[REQUEST_ID_HEADER] = rid

    @signals.task_prerun.connect(weak=False)
    def _prerun(task_id=None, task=None, kwargs=None, **_):
        started[task_id] = time.perf_counter()
        task_var.set(task.name if task else None)
        rid = getattr(task.request, REQUEST_ID_HEADER, None) if task else None
        if rid is None and task is not None:
            rid = _request_id_from_db(task, kwargs or {})
        request_id_var.set(rid)

    @signals.task_postrun.connect(weak=False)
    def _postrun(task_id=None, task=None, state=None, **_):
        start = started.pop(task_id, None)
        name = task.name if task else "unknown"
        state = state or "UNKNOWN"
        TASKS.labels(name, state).inc()
        if start is not None:
            TASK_DURATION.labels(name, state).observe(time.perf_counter() - start)
        request_id_var.set(None)
        task_var.set(None)

    @signals.task_retry.connect(weak=False)
    def _retry(sender=None, **_):
        TASK_RETRIES.labels(getattr(sender, "name", "unknown")).inc()

    @signals.worker_process_shutdown.connect(weak=False)
    def _child_exit(pid=None, **_):
        mark_process_dead(pid or os.getpid())

    @signals.worker_init.connect(weak=False)
    def _worker_metrics(sender=None, **_):
        port = int(os.environ.get("REFFLOW_WORKER_METRICS_PORT", "0") or 0)
        directory = os.environ.get(MULTIPROC_ENV)
        if directory:
            # set by the operator or the image: the folder may not exist yet in
            # this container, and every sample would fail without it
            enable_multiprocess(directory)
        if not port:
            return
        import tempfile

        from prometheus_client import multiprocess, start_http_server

        if not directory:
            enable_multiprocess(tempfile.mkdtemp(prefix="refflow-worker-metrics-"))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        start_http_server(port, addr=os.environ.get("REFFLOW_WORKER_METRICS_HOST", "0.0.0.0"),
                          registry=registry)
        log.info("worker metrics on port %d", port)


def _request_id_from_db(task, kwargs: dict) -> str | None:
    """Tasks published by the scheduler's relay carry no header: look the request
    id up from the referral that started the work (one indexed read)."""
    try:
        from sqlalchemy import select

        from refflow.db.models import Delivery, Referral
        from refflow.workers import pipeline_for

        pipeline = pipeline_for(task.app)
        with pipeline.db.session() as session:
            if "referral_id" in kwargs:
                return session.scalar(select(Referral.request_id)
                                      .where(Referral.id == kwargs["referral_id"]))
            if "delivery_id" in kwargs:
                return session.scalar(select(Referral.request_id)
                                      .join(Delivery, Delivery.referral_id == Referral.id)
                                      .where(Delivery.id == kwargs["delivery_id"]))
    except Exception:  # noqa: BLE001 - logging context is best effort
        return None
    return None
