"""refflow's Celery workers: ``celery -A refflow.workers worker``.

``app`` is configured from REFFLOW_* settings the first time it is used.
"""

from __future__ import annotations

import threading

from celery import Celery

from refflow.workers import monitor  # noqa: F401 - worker heartbeat signals
from refflow.workers.celery_app import create_celery
from refflow.workers.task_signals import install_task_signals
from refflow.workers.tasks import register

_lock = threading.Lock()


def pipeline_for(celery_app: Celery):
    """The process-wide Pipeline of this Celery app (created on first use)."""
    pipeline = getattr(celery_app, "refflow_pipeline", None)
    if pipeline is None:
        with _lock:
            pipeline = getattr(celery_app, "refflow_pipeline", None)
            if pipeline is None:
                from refflow.pipeline.context import Pipeline
                from refflow.workers.publisher import celery_publisher

                celery_app.loader.import_default_modules()
                settings = celery_app.refflow_settings if hasattr(celery_app, "refflow_settings") \
                    else None
                if settings is None:
                    celery_app.conf.broker_url  # noqa: B018 - triggers on_configure
                    settings = celery_app.refflow_settings
                pipeline = Pipeline(settings, publish=celery_publisher(celery_app))
                celery_app.refflow_pipeline = pipeline
    return pipeline


app = create_celery()
register(app, pipeline_for)
install_task_signals()  # task metrics, JSON logs, request id into tasks
celery = app

__all__ = ["app", "celery", "create_celery", "pipeline_for"]
