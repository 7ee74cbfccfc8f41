"""The scheduler's backstop jobs: re-drive referrals and deliveries that have
been stuck in a state longer than a threshold (a lost broker message, a worker
killed mid-task), and expire idempotency keys past their retention.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import func, select, update

from refflow.db.models import Delivery, Referral, utcnow
from refflow.intake import idempotency
from refflow.pipeline import flow, outbox
from refflow.pipeline.context import Pipeline
from refflow.pipeline.outbox import BUILD_PLAN, CHECK_DELIVERY, DELIVER, FINALIZE, RENDER
from refflow.referrals import states

log = logging.getLogger("refflow.scheduler")

NEXT_STEP = {
    states.RECEIVED: BUILD_PLAN,
    states.PLANNING: BUILD_PLAN,
    states.PLANNED: RENDER,
    states.DELIVERING: FINALIZE,
}


def redrive(p: Pipeline, *, stuck_after: dt.timedelta, lease: dt.timedelta) -> int:
    """Queue the next step again for everything stuck; returns how many messages.

    - A delivery still ``sending`` whose claim was not renewed within ``lease``
      lost its worker. On an idempotent channel it is sent again; on any other
      it becomes ``in_doubt`` (it may have gone: staff decide), unless the
      clinic chose ``resend_in_doubt`` (sent again with the same Message-ID).
    - A delivery due for ``stuck_after`` that nobody claimed lost its message.
    - A delivery the provider holds (a queued fax job) is checked every
      ``fax_check_seconds`` (``flow.check_delivery``); it has no claim to lapse.
    - A referral that has not moved for ``stuck_after`` gets its next step again
      (every step is idempotent).
    """
    now = utcnow()
    queued = 0
    with p.db.session() as session:
        expired = session.scalars(select(Delivery).where(
            Delivery.status == "sending", Delivery.claimed_at.is_not(None),
            Delivery.claimed_at < now - lease)
            .with_for_update(skip_locked=True)).all()
        for delivery in expired:
            channel = p.channels.get(delivery.channel)
            if getattr(channel, "idempotent", False) or p.settings.resend_in_doubt:
                delivery.status, delivery.next_attempt_at = "retrying", now
                delivery.last_error = "the worker sending this delivery stopped; sending again"
                outbox.enqueue(session, DELIVER, {"delivery_id": delivery.id})
                queued += 1
                kind = "retry"
            else:
                delivery.status, delivery.next_attempt_at = "in_doubt", None
                delivery.last_error = ("the worker sending this delivery stopped mid-send: "
                                       "it may have been sent; send again or leave it")
                kind = "delivery_in_doubt"
            delivery.updated_at = now
            states.record_event(session, delivery.referral_id, kind, actor="scheduler",
                                delivery_id=delivery.id,
                                reason=f"{delivery.channel}: {delivery.last_error}")
            if delivery.status == "in_doubt":
                session.flush()
                flow.finalize_in(session, session.get(Referral, delivery.referral_id))
        # Deliveries due for a while that nobody claimed: their message is gone.
        due = session.scalars(select(Delivery.id).where(
            Delivery.status.in_(("pending", "retrying")),
            func.coalesce(Delivery.next_attempt_at, Delivery.updated_at) < now - stuck_after,
            Delivery.updated_at < now - stuck_after)).all()
        for delivery_id in due:
            outbox.enqueue(session, DELIVER, {"delivery_id": delivery_id})
            session.execute(update(Delivery).where(Delivery.id == delivery_id)
                            .values(updated_at=now))
            queued += 1
        for delivery_id in flow.due_checks(p, session, now):
            outbox.enqueue(session, CHECK_DELIVERY, {"delivery_id": delivery_id})
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
