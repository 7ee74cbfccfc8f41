"""The queue at a glance: what the dashboard and GET /api/v1/queue show.
Counts are the ones the database keeps as work happens (``referrals.counts``);
the rest reads only referrals and deliveries still in the pipeline."""

from __future__ import annotations

from sqlalchemy import func, select

from refflow.db.models import Delivery, Referral, utcnow
from refflow.pipeline.outbox import backlog
from refflow.referrals import counts, states

WAITING = (states.RECEIVED, states.PLANNING, states.NEEDS_REVIEW, states.PLANNED,
           states.DELIVERING)


def queue_overview(db, broker_stats=None) -> dict:
    now = utcnow()
    with db.session() as session:
        kept = counts.read(session)
        oldest = {}
        for status, created in session.execute(
                select(Referral.status, func.min(Referral.updated_at))
                .where(Referral.status.in_(WAITING)).group_by(Referral.status)).all():
            if created.tzinfo is None:  # SQLite's MIN() bypasses the column type
                import datetime as dt

                created = dt.datetime.fromisoformat(str(created)).replace(tzinfo=dt.UTC)
            oldest[status] = round((now - created).total_seconds(), 1)
        failed = session.execute(
            select(Delivery.id, Delivery.referral_id, Delivery.channel, Delivery.attempts,
                   Delivery.last_error, Delivery.updated_at)
            .where(Delivery.status == "failed").order_by(Delivery.updated_at.desc()).limit(50)
        ).all()
        outbox_backlog = backlog(session)
    if kept.rows > counts.FOLD_ABOVE:
        counts.fold(db)
    by_state = kept.referrals
    body = {
        "counts": {s: by_state.get(s, 0) for s in states.STATES},
        "oldest_waiting_seconds": oldest,
        "oldest_waiting": max(oldest.values()) if oldest else None,
        "review_queue": by_state.get(states.NEEDS_REVIEW, 0),
        "deliveries": kept.deliveries_by_state(),
        "failures": [
            {"delivery_id": d.id, "referral_id": d.referral_id, "channel": d.channel,
             "attempts": d.attempts, "last_error": d.last_error,
             "links": {"referral": f"/api/v1/referrals/{d.referral_id}",
                       "retry": f"/api/v1/deliveries/{d.id}/retry"}}
            for d in failed
        ],
        "outbox_backlog": outbox_backlog,
        "broker": None,
        "workers_online": None,
    }
    if broker_stats is not None:
        try:
            stats = broker_stats()
            body["broker"] = {"reachable": True, "queue_depth": stats["queue_depth"]}
            body["workers_online"] = stats["workers_online"]
        except Exception as exc:  # noqa: BLE001 - the page still shows the database view
            body["broker"] = {"reachable": False, "error": type(exc).__name__}
    return body
