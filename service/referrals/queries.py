"""Reading referrals as the API and the pages show them."""

from __future__ import annotations

import base64
import datetime as dt
import json

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from refflow.db.models import Delivery, Document, Referral, ReferralEvent


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
        "sent_at": delivery.sent_at.isoformat() if delivery.sent_at else None,
        "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.next_attempt_at
        else None,
        "links": {"retry": f"/api/v1/deliveries/{delivery.id}/retry"},
    }


def detail(session: Session, referral: Referral) -> dict:
    events = session.scalars(select(ReferralEvent).where(
        ReferralEvent.referral_id == referral.id).order_by(ReferralEvent.id)).all()
    deliveries = session.scalars(select(Delivery).where(
        Delivery.referral_id == referral.id).order_by(Delivery.created_at, Delivery.id)).all()
    docs = session.execute(select(Document.name, Document.content_type, Document.size,
                                  Document.sha256).where(Document.referral_id == referral.id)
                           .order_by(Document.name)).all()
    body = summary(referral)
    body.update({
        "received_on": referral.received_on.isoformat(),
        "problems": referral.intake_problems or [],
        "timeline": [event_json(e) for e in events],
        "deliveries": [delivery_json(d) for d in deliveries],
        "documents": [document_json(referral.id, *row) for row in docs],
        "links": referral_links(referral.id),
    })
    return body


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
        query = query.where(or_(Referral.created_at < created,
                                and_(Referral.created_at == created, Referral.id < rid)))
    rows = session.scalars(query.order_by(Referral.created_at.desc(), Referral.id.desc())
                           .limit(limit + 1)).all()
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return list(rows[:limit]), next_cursor
