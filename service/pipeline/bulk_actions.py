"""Staff actions on many items at once: send failed deliveries again (a chosen
set, or every failed delivery of a channel since a time) and cancel stuck
referrals.

Each item goes through the single-item action (``staff_actions.retry_delivery``,
``staff_actions.cancel``), so its timeline entry, audit row and outbox message
are those of doing it by hand. An item the action does not apply to (already
sent, already queued, already cancelled, not found) is skipped and counted
with the reason, so the same bulk action run twice sends nothing twice. One
more audit row records the bulk action and its counts.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select

from refflow.db.models import AuditEntry, Delivery, Referral, utcnow
from refflow.documents.names import DECLINE_NAMES
from refflow.pipeline import staff_actions
from refflow.pipeline.context import Pipeline, StepError
from refflow.referrals import states
from refflow.referrals.states import IllegalTransition

# The most items one bulk action takes (a filter that finds more leaves the rest,
# and says how many): about 20 s of a web request on a busy PostgreSQL.
MAX_ITEMS = 500
# Referrals that may be stuck: not ended, and not moving on their own.
STUCK_STATES = (states.RECEIVED, states.PLANNING, states.NEEDS_REVIEW, states.PLANNED,
                states.DELIVERING, states.FAILED)
# Why a delivery that is not "failed" is left alone by a bulk retry.
NOT_FAILED = {
    "sent": "already sent",
    "pending": "already queued to be sent",
    "retrying": "already queued to be sent",
    "sending": "being sent now",
    "in_doubt": "may have been sent: decide on its referral page",
    "cancelled": "cancelled with its referral",
}
NOT_FOUND = "not found"


@dataclass
class BulkResult:
    """What a bulk action did: the ids it acted on, and those it skipped with why."""

    done: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    remaining: int = 0  # what a filter still finds after this action (beyond MAX_ITEMS)

    def skip(self, item_id: str, reason: str) -> None:
        self.skipped[item_id] = reason

    def reasons(self) -> dict[str, int]:
        """How many were skipped for each reason (most frequent first)."""
        return dict(Counter(self.skipped.values()).most_common())

    def summary(self, verb: str) -> str:
        """One line for staff and the audit trail, e.g. "retried 98, skipped 2 (already sent: 2)"."""
        text = f"{verb} {len(self.done)}, skipped {len(self.skipped)}"
        if self.skipped:
            text += " (" + "; ".join(f"{reason}: {n}" for reason, n in self.reasons().items()) + ")"
        if self.remaining:
            text += f"; {self.remaining} more to do: run it again"
        return text

    def as_json(self) -> dict:
        return {"done": len(self.done), "skipped": len(self.skipped), "ids": self.done,
                "skipped_items": [{"id": i, "reason": r} for i, r in self.skipped.items()],
                "skipped_reasons": self.reasons(), "remaining": self.remaining}


def _unique(ids) -> list[str]:
    return list(dict.fromkeys(str(i) for i in ids))


def _audit(p: Pipeline, *, actor: str, action: str, detail: str, ip: str | None) -> None:
    with p.db.session() as session:
        session.add(AuditEntry(actor=actor, action=action, ip=ip, detail=detail[:500]))


def _status_reason(p: Pipeline, delivery_id: str) -> str:
    with p.db.session() as session:
        status = session.scalar(select(Delivery.status).where(Delivery.id == delivery_id))
    return NOT_FOUND if status is None else NOT_FAILED.get(status, status)


def _failed(query, channel: str | None, since: dt.datetime | None):
    """Failed deliveries that can be sent again: their referral is failed or
    delivering (or rejected, for its "not accepted" letter), not cancelled."""
    retryable = select(Referral.id).where(Referral.status.in_((states.FAILED, states.DELIVERING)))
    rejected = select(Referral.id).where(Referral.status == states.REJECTED)
    query = query.where(Delivery.status == "failed",
                        Delivery.referral_id.in_(retryable)
                        | (Delivery.document.in_(DECLINE_NAMES) & Delivery.referral_id.in_(rejected)))
    if channel:
        query = query.where(Delivery.channel == channel)
    if since is not None:
        query = query.where(Delivery.updated_at >= since)
    return query


def failed_deliveries(session, *, channel: str | None = None, since: dt.datetime | None = None,
                      limit: int = MAX_ITEMS) -> list[Delivery]:
    """Failed deliveries that can be sent again, oldest failure first: of
    ``channel`` only and failed at or after ``since`` when given."""
    query = _failed(select(Delivery), channel, since)
    return list(session.scalars(query.order_by(Delivery.updated_at, Delivery.id).limit(limit)))


def count_failed(session, *, channel: str | None = None, since: dt.datetime | None = None) -> int:
    return session.scalar(_failed(select(func.count()).select_from(Delivery), channel, since)) or 0


def retry_deliveries(p: Pipeline, delivery_ids, *, actor: str, ip: str | None = None,
                     label: str = "selected") -> BulkResult:
    """Send each failed delivery of ``delivery_ids`` again (``retry_delivery``,
    fresh retry window, same target). Deliveries that are not failed are
    skipped: sent, queued or being sent ones (so nothing is sent twice), and
    those in doubt, which staff decide one by one."""
    ids = _unique(delivery_ids)[:MAX_ITEMS]
    with p.db.session() as session:
        found = dict(session.execute(select(Delivery.id, Delivery.status)
                                     .where(Delivery.id.in_(ids))).all()) if ids else {}
    result = BulkResult()
    for delivery_id in ids:
        status = found.get(delivery_id)
        if status is None:
            result.skip(delivery_id, NOT_FOUND)
        elif status != "failed":
            result.skip(delivery_id, NOT_FAILED.get(status, status))
        else:
            try:
                staff_actions.retry_delivery(p, delivery_id, actor=actor)
            except LookupError:
                result.skip(delivery_id, NOT_FOUND)
            except StepError as exc:
                result.skip(delivery_id, str(exc))
            except IllegalTransition:  # another retry of its referral got there first
                result.skip(delivery_id, _status_reason(p, delivery_id))
            else:
                result.done.append(delivery_id)
    _audit(p, actor=actor, action="delivery.bulk_retry", ip=ip,
           detail=f"{label}: " + result.summary("retried"))
    return result


def retry_failed(p: Pipeline, *, channel: str | None, since: dt.datetime | None, actor: str,
                 ip: str | None = None) -> BulkResult:
    """Send again every delivery of ``channel`` that failed since ``since`` (up to MAX_ITEMS)."""
    with p.db.session() as session:
        ids = [d.id for d in failed_deliveries(session, channel=channel, since=since,
                                               limit=MAX_ITEMS)]
    label = f"all failed{' ' + channel if channel else ''}" + (
        f" since {since.isoformat(timespec='minutes')}" if since else "")
    result = retry_deliveries(p, ids, actor=actor, ip=ip, label=label)
    if len(ids) == MAX_ITEMS:
        with p.db.session() as session:
            result.remaining = count_failed(session, channel=channel, since=since)
    return result


def stuck_referrals(session, *, older_than: dt.timedelta, status: str | None = None,
                    limit: int = MAX_ITEMS) -> list[Referral]:
    """Referrals that have not ended and have not moved for ``older_than``
    (of ``status`` only when given), longest still first."""
    wanted = (status,) if status else STUCK_STATES
    return list(session.scalars(
        select(Referral).where(Referral.status.in_(wanted),
                               Referral.updated_at < utcnow() - older_than)
        .order_by(Referral.updated_at, Referral.id).limit(limit)))


def cancel_referrals(p: Pipeline, referral_ids, *, actor: str, reason: str,
                     ip: str | None = None) -> BulkResult:
    """Cancel each referral (``staff_actions.cancel``: its waiting deliveries
    stop), with ``reason`` on its timeline; ended ones are skipped."""
    result = BulkResult()
    for referral_id in _unique(referral_ids)[:MAX_ITEMS]:
        with p.db.session() as session:
            row = session.get(Referral, referral_id)
            if row is None:
                result.skip(referral_id, NOT_FOUND)
                continue
            try:
                staff_actions.cancel(session, row, actor=actor, reason=reason)
            except IllegalTransition as exc:
                session.rollback()
                result.skip(referral_id, "already cancelled" if exc.current == states.CANCELLED
                            else f"a {exc.current} referral cannot be cancelled")
                continue
            session.add(AuditEntry(actor=actor, action="referral.cancel", referral_id=row.id,
                                   ip=ip, detail="bulk"))
        result.done.append(referral_id)
    _audit(p, actor=actor, action="referral.bulk_cancel", ip=ip,
           detail=result.summary("cancelled"))
    return result
