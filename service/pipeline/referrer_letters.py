"""A clinician's rejection told to the referring office: the "referral not
accepted" letter's deliveries.

The letter goes out through the same ``deliver`` step as every other
document (``flow.deliver``: claimed by one worker, retried, in doubt,
recorded), on deliveries of the rejected referral; ``letter_channels`` hands
the channels the letter. A rejected referral stays rejected: ``finalize``
only moves a delivering one.
"""

from __future__ import annotations

from refflow.db.models import Delivery, Referral, utcnow
from refflow.pipeline import outbox
from refflow.pipeline.context import Pipeline
from refflow.pipeline.flow import retry_window
from refflow.pipeline.routing import delivery_fields
from refflow.pipeline.stored_documents import store_documents
from refflow.referrals import states


def queue_decline(p: Pipeline, session, row: Referral, documents: dict[str, bytes],
                  routes: list[dict], *, actor: str) -> list[int]:
    """Store the letter and create one delivery per route (with its ``deliver``
    message), in ``session``; returns the outbox messages' ids. A route
    whose channel is missing or refuses the target fails at once, on the
    timeline for staff."""
    store_documents(session, row.id, documents)
    now, created = utcnow(), []
    for route in routes:
        delivery = Delivery(referral_id=row.id, max_attempts=p.settings.delivery_max_attempts,
                            created_at=now, updated_at=now,
                            retry_until=now + retry_window(p, route["channel"]),
                            **delivery_fields(p, route))
        session.add(delivery)
        if delivery.status == "pending":
            created.append(delivery)
        else:
            states.record_event(session, row.id, "delivery_failed", actor=actor,
                                reason=f"{delivery.channel}: {delivery.last_error}")
    states.record_event(
        session, row.id, "decline_letter", actor=actor,
        reason=(f"'referral not accepted' letter queued to the referrer by "
                f"{' and '.join(d.channel for d in created)}" if created else
                "'referral not accepted' letter kept with the referral: no fax or email "
                "route to the referrer"))
    session.flush()
    messages = [outbox.enqueue(session, outbox.DELIVER, outbox.message_args(
        delivery_id=d.id, request_id=row.request_id)) for d in created]
    session.flush()
    return [m.id for m in messages]
