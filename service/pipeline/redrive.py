"""The scheduler's backstop jobs: re-drive referrals and deliveries that have
been stuck in a state longer than a threshold (a lost broker message, a worker
killed mid-task), and expire idempotency keys past their retention.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select, update

from refflow.db.models import Delivery, Referral, utcnow
from refflow.intake import idempotency
from refflow.pipeline import outbox
from refflow.pipeline.context import Pipeline
from refflow.pipeline.outbox import BUILD_PLAN, DELIVER, FINALIZE, RENDER
from refflow.referrals import states

log = logging.getLogger("refflow.scheduler")

NEXT_STEP = {
    states.RECEIVED: BUILD_PLAN,
    states.PLANNING: BUILD_PLAN,
    states.PLANNED: RENDER,
    states.DELIVERING: FINALIZE,
}


def redrive(p: Pipeline, *, stuck_after: dt.timedelta, lease: dt.timedelta) -> int:
    """Queue the next step again for everything stuck; returns how many messages."""
    now = utcnow()
    queued = 0
    with p.db.session() as session:
        # A delivery claimed by a worker that died: channels are idempotent per
        # delivery id, so sending again cannot duplicate.
        expired = session.execute(
            update(Delivery)
            .where(Delivery.status == "sending", Delivery.claimed_at < now - lease)
            .values(status="retrying", next_attempt_at=now, updated_at=now,
                    last_error="the worker sending this delivery stopped; sending again")
            .returning(Delivery.id)
        ).scalars().all()
        for delivery_id in expired:
            outbox.enqueue(session, DELIVER, {"delivery_id": delivery_id})
            queued += 1
        # Deliveries whose retry is due but whose message is gone.
        due = session.scalars(select(Delivery.id).where(
            Delivery.status.in_(("pending", "retrying")),
            Delivery.updated_at < now - stuck_after)).all()
        for delivery_id in due:
            outbox.enqueue(session, DELIVER, {"delivery_id": delivery_id})
            session.execute(update(Delivery).where(Delivery.id == delivery_id)
                            .values(updated_at=now))
            queued += 1
        rows = session.execute(select(Referral.id, Referral.status).where(
            Referral.status.in_(tuple(NEXT_STEP)), Referral.updated_at < now - stuck_after)
        ).all()
        for referral_id, status in rows:
            outbox.enqueue(session, NEXT_STEP[status], {"referral_id": referral_id})
            session.execute(update(Referral).where(Referral.id == referral_id)
                            .values(updated_at=now))
            queued += 1
    if queued:
        log.info("re-drove %d stuck message(s)", queued)
    return queued


def expire_idempotency_keys(p: Pipeline) -> int:
    with p.db.session() as session:
        return idempotency.expire(session)
