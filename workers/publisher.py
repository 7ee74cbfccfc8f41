"""Publishing outbox messages to Celery by task name (no task imports needed)."""

from __future__ import annotations

from refflow.pipeline.outbox import Publisher

ID_ARGS = ("referral_id", "delivery_id")


def celery_publisher(celery_app) -> Publisher:
    """A publisher that sends ``task(**args)`` through ``celery_app``'s broker.

    The task's queue comes from the app's routes; the producer pool keeps one
    broker connection per process.
    """
    from refflow.workers.celery_app import ROUTES

    def publish(task: str, args: dict) -> None:
        unknown = set(args) - set(ID_ARGS)
        if unknown:  # messages carry ids only, never PHI
            raise ValueError(f"outbox message for {task} carries {sorted(unknown)}")
        celery_app.send_task(task, kwargs=args, queue=ROUTES.get(task, {}).get("queue"),
                             retry=True)

    return publish
