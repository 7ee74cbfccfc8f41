"""A clinician's rejection told to the referring office: the "referral not
accepted" letter's deliveries.

The letter goes out through the same ``deliver`` step as every other
document (``flow.deliver``: claimed by one worker, retried, in doubt,
recorded), on deliveries of the rejected referral; each channel sends the
delivery's own document. A rejected referral stays rejected: ``finalize``
only moves a delivering one.
"""

from __future__ import annotations

from refflow.db.models import Referral
from refflow.pipeline import outbox
from refflow.pipeline.context import Pipeline
from refflow.pipeline.flow import create_deliveries
from refflow.pipeline.stored_documents import store_documents
from refflow.referrals import states


def queue_decline(p: Pipeline, session, row: Referral, documents: dict[str, bytes],
                  routes: list[dict], *, actor: str) -> list[int]:
    """Store the letter and create one delivery per route (with its ``deliver``
    message), in ``session``; returns the outbox messages' ids. A route
    whose channel is missing or refuses the target fails at once, on the
    timeline for staff."""
    store_documents(p.store, session, row.id, documents)
    created = create_deliveries(p, session, row, routes, actor=actor)
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
