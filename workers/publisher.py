"""Publishing outbox messages to Celery by task name (no task imports needed)."""

from __future__ import annotations

from refflow.ops.logging import REQUEST_ID_HEADER
from refflow.pipeline.outbox import Publisher

ID_ARGS = ("referral_id", "delivery_id", "fax_id", "message_id")


def celery_publisher(celery_app) -> Publisher:
    """A publisher that sends ``task(**args)`` through ``celery_app``'s broker.

    The task's queue comes from the app's routes; the producer pool keeps one
    broker connection per process.
    """
    from refflow.workers.celery_app import ROUTES

    def publish(task: str, args: dict) -> None:
        args = dict(args)
        request_id = args.pop("request_id", None)
        unknown = set(args) - set(ID_ARGS)
        if unknown:  # messages carry ids only, never PHI
            raise ValueError(f"outbox message for {task} carries {sorted(unknown)}")
        # Always set, even to None: a relay running inside a task must not stamp
        # that task's request id on other referrals' messages.
        # argsrepr/kwargsrepr given (the ids as they are) spare Celery's saferepr
        celery_app.send_task(task, kwargs=args, queue=ROUTES.get(task, {}).get("queue"),
                             retry=True, headers={REQUEST_ID_HEADER: request_id},
                             argsrepr="()", kwargsrepr=repr(args))

    return publish
