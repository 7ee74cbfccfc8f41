"""The Celery tasks. Each is thin: load by id, call the core step in
``refflow.pipeline.flow``, and let the database state machine decide whether
there is anything to do (so a message delivered twice does nothing twice).

Retries of deliveries live in the database (``next_attempt_at`` plus a
delayed outbox message), not in Celery countdowns. The one thing Celery
retries is a step that could not reach the database or the broker (an outage,
not a bug): it is run again after a short backoff instead of being acked
away; anything else that raises is re-driven by the scheduler's sweep.
"""

from __future__ import annotations

import functools
import logging

import redis
from celery import Celery
from sqlalchemy.exc import InterfaceError, OperationalError

from refflow.faxin import inbox
from refflow.interop import webhooks
from refflow.pipeline import flow, outbox

log = logging.getLogger("refflow.tasks")


# Errors of an unreachable database or broker: the step runs again once it is back.
OUTAGE_ERRORS = (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError)
OUTAGE_RETRY = {"autoretry_for": OUTAGE_ERRORS, "retry_backoff": 1, "retry_backoff_max": 15,
                "retry_jitter": True, "max_retries": 40}  # about ten minutes of outage


def register(app: Celery, pipeline_for) -> None:
    """Bind the tasks to ``app``; ``pipeline_for(app)`` gives the process's Pipeline."""

    @app.task(name=outbox.BUILD_PLAN, **OUTAGE_RETRY)
    def build_plan(referral_id: str) -> None:
        flow.build_plan(pipeline_for(app), referral_id)

    @app.task(name=outbox.RENDER, **OUTAGE_RETRY)
    def render_documents(referral_id: str) -> None:
        flow.render_documents(pipeline_for(app), referral_id)

    @app.task(name=outbox.DELIVER, **OUTAGE_RETRY)
    def deliver(delivery_id: str) -> None:
        flow.deliver(pipeline_for(app), delivery_id)

    @app.task(name=outbox.CHECK_DELIVERY, **OUTAGE_RETRY)
    def check_delivery(delivery_id: str) -> None:
        flow.check_delivery(pipeline_for(app), delivery_id)

    @app.task(name=outbox.READ_FAX, **OUTAGE_RETRY)
    def read_fax(fax_id: str) -> None:
        inbox.read(pipeline_for(app), fax_id)

    @app.task(name=outbox.SEND_WEBHOOK, **OUTAGE_RETRY)
    def send_webhook(message_id: str) -> None:
        webhooks.send(pipeline_for(app), message_id)

    @app.task(name=outbox.FINALIZE, **OUTAGE_RETRY)
    def finalize(referral_id: str) -> None:
        flow.finalize(pipeline_for(app), referral_id)

    @app.task(name="refflow.ping")
    def ping(reply_to: str | None = None) -> None:
        """A no-op round trip (bench/pipeline.py's orchestration floor; health probes).

        With ``reply_to`` it pushes one item onto that Redis list of the broker."""
        if reply_to:
            client = _redis(app.conf.broker_url)
            client.rpush(reply_to, b"1")
            client.expire(reply_to, 60)


@functools.lru_cache(maxsize=4)
def _redis(url: str):
    import redis

    return redis.Redis.from_url(url)
