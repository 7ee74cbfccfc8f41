"""Reading referrals as the API and the pages show them."""

from __future__ import annotations

import base64
import datetime as dt
import json

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from refflow.db.models import Delivery, Document, Plan, ReceivedFax, Referral, ReferralEvent
from refflow.documents.names import DECLINE_NAMES, FAX, SUMMARY
from refflow.referrals import states

# What the referring office is told of its referral: the decision in plain words.
DECISION_LABELS = {
    "released": "Plan released",
    "held_for_review": "Held for review",
    "rejected": "Not accepted",
    "do_not_exercise": "Do not exercise yet",
    "cancelled": "Cancelled",
    "pending": "Plan being prepared",
}
DO_NOT_EXERCISE = (
    "Do not start exercise yet. The clinic found a warning sign that needs a doctor to check "
    "the patient first, so no exercise plan was sent to the patient. Please see the patient "
    "(or send them to urgent care) before any exercise starts. When the patient is ready to "
    "exercise, please send a new referral.")
REJECTED = ("The clinic did not accept this referral. No exercise plan will be sent to the "
            "patient.")
REJECTED_LETTER = " You are sent a letter with the reason."
HELD = ("A clinician at the clinic is checking the plan before it goes out. Nothing has been "
        "sent to the patient yet.")
CANCELLED = "This referral was cancelled. Nothing more will be sent for it."
PENDING = "The clinic has the referral and is preparing the plan."
RELEASED = {
    "completed": "The plan was approved and sent: the patient has the exercise plan, and you "
                 "were sent the plan summary.",
    "failed": "The plan was approved, but one of the messages could not be sent yet. The "
              "clinic is fixing it.",
}
RELEASED_SENDING = "The plan was approved and is being sent to the patient and to you."
# Documents that carry the plan to the referring office: the one-page summary and
# its fax (a route with no target is the clinic's chart copy, not the referrer; the
# chart record may be read in the portal but is never what "the plan was sent" means).
PLAN_TO_REFERRER = (FAX, SUMMARY)


def referral_links(referral_id: str) -> dict:
    base = f"/api/v1/referrals/{referral_id}"
    return {"self": base, "plan": f"{base}/plan", "documents": f"{base}/documents",
            "cancel": f"{base}/cancel"}


def visible(session: Session, referral_id: str, practice_id: str | None) -> Referral | None:
    """The referral if it exists and the caller may see it (staff: practice_id None)."""
    query = select(Referral).where(Referral.id == referral_id)
    if practice_id is not None:
        query = query.where(Referral.practice_id == practice_id)
    return session.scalar(query)


def summary(referral: Referral) -> dict:
    return {
        "id": referral.id,
        "external_id": referral.external_id,
        "status": referral.status,
        "urgency": referral.urgency,
        "flagged": referral.flagged,
        "created_at": referral.created_at.isoformat(),
        "updated_at": referral.updated_at.isoformat(),
        "links": {"self": f"/api/v1/referrals/{referral.id}"},
    }


def event_json(event: ReferralEvent) -> dict:
    return {"at": event.at.isoformat(), "actor": event.actor, "kind": event.kind,
            "from": event.from_status, "to": event.to_status, "reason": event.reason}


def delivery_json(delivery: Delivery) -> dict:
    return {
        "id": delivery.id, "channel": delivery.channel, "document": delivery.document,
        "target": delivery.target, "status": delivery.status, "attempts": delivery.attempts,
        "max_attempts": delivery.max_attempts, "last_error": delivery.last_error,
        "reference": delivery.reference,
        # what the provider confirmed (a fax server: job_id, pages_sent, duration_s, remote_id)
        "confirmation": delivery.detail or None,
        "sent_at": delivery.sent_at.isoformat() if delivery.sent_at else None,
        "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.next_attempt_at
        else None,
        "links": {"retry": f"/api/v1/deliveries/{delivery.id}/retry"},
    }


def decision(referral: Referral, plan: dict | None, events, deliveries) -> dict:
    """The decision the referring office sees, in plain words:
    ``{"kind", "label", "message", "reason", "before_exercise"}``.

    ``reason`` is the clinician's reason for a rejection (the timeline's
    "plan rejected: <note>"), or the intake rules' messages for a referral
    they refused; ``before_exercise`` lists what the plan's flags ask before
    any exercise (do-not-exercise only). Nothing here names the patient."""
    decided = (plan or {}).get("decision")
    reason, before = None, []
    if referral.status == states.CANCELLED:
        kind, message = "cancelled", CANCELLED
    elif referral.status == states.REJECTED:
        kind, message = "rejected", REJECTED
        reason = _rejection_reason(referral, events)
        if any(d.document in DECLINE_NAMES for d in deliveries):
            message += REJECTED_LETTER
    elif decided == "do_not_exercise":
        kind, message = "do_not_exercise", DO_NOT_EXERCISE
        before = [f["message"] for f in (plan or {}).get("flags", [])
                  if f.get("severity") == "needs_review" and f.get("message")]
    elif referral.status == states.NEEDS_REVIEW:
        kind, message = "held_for_review", HELD
    elif decided == "release" and referral.status in (states.PLANNED, states.DELIVERING,
                                                     states.COMPLETED, states.FAILED):
        kind, message = "released", RELEASED.get(referral.status, RELEASED_SENDING)
    else:
        kind, message = "pending", PENDING
    return {"kind": kind, "label": DECISION_LABELS[kind], "message": message,
            "reason": reason, "before_exercise": before}


def _rejection_reason(referral: Referral, events) -> str | None:
    for event in reversed(list(events)):
        if event.kind == "status" and event.to_status == states.REJECTED:
            text = event.reason or ""
            if text.startswith("plan rejected: "):
                return text.removeprefix("plan rejected: ").strip() or None
            break
    refused = [p.get("message") for p in referral.intake_problems or []
               if p.get("severity") == "reject" and p.get("message")]
    return " ".join(refused) or None


def plan_sent_to_referrer(deliveries, pages: dict[str, int | None]) -> dict | None:
    """When the plan first reached the referring office: ``{"at", "channel",
    "target", "document", "confirmation", "pages", "seconds", "remote_id"}`` —
    the delivery's ``sent_at``, the channel's reference (fax job id, SMTP
    Message-ID) and, for a fax, its pages (as the fax server confirmed them,
    else as rendered), the call's seconds and the receiving machine's id when
    the fax server told them — or ``None`` when it has not (yet)."""
    sent = [d for d in deliveries if d.status == "sent" and d.sent_at is not None
            and d.document in PLAN_TO_REFERRER and d.target]
    if not sent:
        return None
    first = min(sent, key=lambda d: d.sent_at)
    confirmed = first.detail or {}
    return {"at": first.sent_at.isoformat(), "channel": first.channel, "target": first.target,
            "document": first.document, "confirmation": first.reference or None,
            "pages": confirmed.get("pages_sent") or pages.get(first.document),
            "seconds": confirmed.get("duration_s"), "remote_id": confirmed.get("remote_id")}


def outcome(session: Session, referral: Referral, events=None, deliveries=None) -> dict:
    """The decision and the proof the plan was sent, for the API and the pages."""
    if events is None:
        events = session.scalars(select(ReferralEvent).where(
            ReferralEvent.referral_id == referral.id, ReferralEvent.kind == "status")
            .order_by(ReferralEvent.id)).all()
    if deliveries is None:
        deliveries = session.scalars(select(Delivery).where(
            Delivery.referral_id == referral.id)).all()
    plan = session.scalar(select(Plan.body).where(Plan.referral_id == referral.id))
    pages = dict(session.execute(select(Document.name, Document.pages).where(
        Document.referral_id == referral.id, Document.name.in_(PLAN_TO_REFERRER))).all())
    return {"decision": decision(referral, plan, events, deliveries),
            "plan_sent_to_referrer": plan_sent_to_referrer(deliveries, pages)}


def detail(session: Session, referral: Referral) -> dict:
    events = session.scalars(select(ReferralEvent).where(
        ReferralEvent.referral_id == referral.id).order_by(ReferralEvent.id)).all()
    deliveries = session.scalars(select(Delivery).where(
        Delivery.referral_id == referral.id).order_by(Delivery.created_at, Delivery.id)).all()
    docs = session.execute(select(Document.name, Document.content_type, Document.size,
                                  Document.sha256).where(Document.referral_id == referral.id)
                           .order_by(Document.name)).all()
    body = summary(referral)
    faxes = session.execute(select(ReceivedFax.id, ReceivedFax.status, ReceivedFax.pages,
                                   ReceivedFax.received_at)
                            .where(ReceivedFax.referral_id == referral.id)
                            .order_by(ReceivedFax.received_at, ReceivedFax.id)).all()
    body.update({
        "received_on": referral.received_on.isoformat(),
        "problems": referral.intake_problems or [],
        "timeline": [event_json(e) for e in events],
        "deliveries": [delivery_json(d) for d in deliveries],
        "documents": [document_json(referral.id, *row) for row in docs],
        "faxes": [fax_json(*row) for row in faxes],
        "links": referral_links(referral.id),
    })
    if any(f.status == "referral" for f in faxes):
        body["source"] = "fax"  # created from a received fax
    body.update(outcome(session, referral, events, deliveries))
    return body


def fax_json(fax_id: str, status: str, pages: int, received_at: dt.datetime) -> dict:
    """A received fax of the referral: the one it was created from (``source``)
    or one attached to it later (``attached``)."""
    return {"id": fax_id, "kind": "source" if status == "referral" else "attached",
            "pages": pages, "received_at": received_at.isoformat(),
            "href": f"/api/v1/faxes/{fax_id}"}


def document_json(referral_id: str, name: str, content_type: str, size: int, sha256: str) -> dict:
    return {"name": name, "content_type": content_type, "size": size, "sha256": sha256,
            "href": f"/api/v1/referrals/{referral_id}/documents/{name}"}


def encode_cursor(referral: Referral) -> str:
    raw = json.dumps([referral.created_at.isoformat(), referral.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    padded = cursor + "=" * (-len(cursor) % 4)
    created, rid = json.loads(base64.urlsafe_b64decode(padded))
    return dt.datetime.fromisoformat(created), str(rid)


def page(session: Session, *, practice_id: str | None, statuses: list[str] | None = None,
         limit: int = 50, cursor: str | None = None) -> tuple[list[Referral], str | None]:
    """Newest first, keyset-paginated on (created_at, id)."""
    query = select(Referral)
    if practice_id is not None:
        query = query.where(Referral.practice_id == practice_id)
    if statuses:
        query = query.where(Referral.status.in_(statuses))
    if cursor:
        created, rid = decode_cursor(cursor)
        # a row comparison: an index range on (created_at, id), however deep the page
        query = query.where(tuple_(Referral.created_at, Referral.id) < tuple_(created, rid))
    rows = session.scalars(query.order_by(Referral.created_at.desc(), Referral.id.desc())
                           .limit(limit + 1)).all()
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return list(rows[:limit]), next_cursor
