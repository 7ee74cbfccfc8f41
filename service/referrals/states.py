"""The referral state machine. Every status change goes through ``transition``:
it checks the move is allowed, applies it with a conditional UPDATE (so two
workers cannot both make the same move), and writes the timeline event in the
same transaction. After the transaction commits, the plugins hear of each
change (``refflow_referral_status_changed``), in every process.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import event, func, literal, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from refflow.db.durations import seconds_between
from refflow.db.models import Referral, ReferralEvent, UTCDateTime, utcnow

log = logging.getLogger("refflow.referrals")

RECEIVED = "received"
PLANNING = "planning"
NEEDS_REVIEW = "needs_review"
PLANNED = "planned"
DELIVERING = "delivering"
COMPLETED = "completed"
FAILED = "failed"
REJECTED = "rejected"
CANCELLED = "cancelled"

STATES = (RECEIVED, PLANNING, NEEDS_REVIEW, PLANNED, DELIVERING, COMPLETED, FAILED, REJECTED,
          CANCELLED)
TERMINAL = frozenset({COMPLETED, REJECTED, CANCELLED})

ALLOWED: dict[str, frozenset[str]] = {
    RECEIVED: frozenset({PLANNING, REJECTED, CANCELLED}),
    PLANNING: frozenset({PLANNED, NEEDS_REVIEW, FAILED, CANCELLED}),
    NEEDS_REVIEW: frozenset({PLANNED, REJECTED, CANCELLED, PLANNING}),
    PLANNED: frozenset({DELIVERING, CANCELLED}),
    DELIVERING: frozenset({COMPLETED, FAILED, CANCELLED}),
    FAILED: frozenset({DELIVERING, PLANNING, CANCELLED}),
    COMPLETED: frozenset(),
    REJECTED: frozenset(),
    CANCELLED: frozenset(),
}


class IllegalTransition(Exception):
    """A status change the state machine does not allow (or that lost a race)."""

    def __init__(self, referral_id: str, current: str, wanted: str) -> None:
        super().__init__(f"referral {referral_id}: cannot go from {current} to {wanted}")
        self.referral_id = referral_id
        self.current = current
        self.wanted = wanted


def can_transition(current: str, new: str) -> bool:
    return new in ALLOWED.get(current, ())


def transition(session: Session, referral: Referral, new: str, *, actor: str,
               reason: str | None = None, expected: str | None = None) -> ReferralEvent:
    """Move ``referral`` to ``new``; raise ``IllegalTransition`` when not allowed.

    ``expected`` is the status the caller believes the referral has (defaults to
    the loaded one); the UPDATE only applies if the row still has it.
    """
    current = expected or referral.status
    if not can_transition(current, new):
        raise IllegalTransition(referral.id, current, new)
    now = utcnow()
    figures = _figures(current, new, now)
    result = session.execute(
        update(Referral)
        .where(Referral.id == referral.id, Referral.status == current)
        .values(status=new, updated_at=now, **figures)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.refresh(referral, ["status"])
        raise IllegalTransition(referral.id, referral.status, new)
    # Keep the loaded object in step with the UPDATE without marking it dirty
    # (which would make the ORM write the same values a second time).
    set_committed_value(referral, "status", new)
    set_committed_value(referral, "updated_at", now)
    if figures:  # (an empty list would expire every attribute)
        session.expire(referral, list(figures))
    entry = ReferralEvent(referral_id=referral.id, at=now, actor=actor, kind="status",
                          from_status=current, to_status=new, reason=reason)
    session.add(entry)
    session.info.setdefault("status_changes", []).append((referral.id, current, new))
    return entry


def _figures(current: str, new: str, now: dt.datetime) -> dict:
    """The Reports' figures a move changes (``Referral.released_at`` and the
    review times): the first release, the latest entry into review, and each
    stay in review added up as it ends (a stay whose start is not known, begun
    before migration 0014 by a worker of the previous version, leaves the
    referral out of the review times, as one never held)."""
    figures = {}
    if new == PLANNED:
        figures["released_at"] = func.coalesce(Referral.released_at, now)
    if new == NEEDS_REVIEW:
        figures["review_started_at"] = now
    if current == NEEDS_REVIEW:
        figures["review_seconds"] = func.coalesce(Referral.review_seconds, 0.0) + \
            seconds_between(Referral.review_started_at, literal(now, UTCDateTime()))
    return figures


def record_event(session: Session, referral_id: str, kind: str, *, actor: str,
                 reason: str | None = None, delivery_id: str | None = None) -> ReferralEvent:
    """A timeline entry that is not a status change (retry, plugin error, note…);
    ``delivery_id`` names the delivery an entry is about."""
    entry = ReferralEvent(referral_id=referral_id, actor=actor, kind=kind, reason=reason,
                          delivery_id=delivery_id)
    session.add(entry)
    return entry


def created(session: Session, referral: Referral, *, actor: str,
            reason: str | None = None) -> ReferralEvent:
    """The first timeline entry of a referral just added in ``session``
    (``None`` → ``received``); the plugins hear of it after the commit like
    of any other change."""
    entry = ReferralEvent(referral_id=referral.id, at=referral.created_at or utcnow(),
                          actor=actor, kind="status", from_status=None,
                          to_status=referral.status, reason=reason)
    session.add(entry)
    session.info.setdefault("status_changes", []).append((referral.id, None, referral.status))
    return entry


@event.listens_for(Session, "after_commit")
def _tell_plugins_after_commit(session: Session) -> None:
    """Every committed status change reaches ``refflow_referral_status_changed``
    once, in order, in whatever process committed it (web, worker, scheduler,
    CLI). The plugins are those of the settings the session's database was
    opened with (``database_for``). A plugin that raises is recorded on the
    referral's timeline, in a transaction of its own: the change stands."""
    changes = session.info.pop("status_changes", None)
    settings = session.info.get("settings")
    if not changes or settings is None:
        return
    from refflow.plugins.manager import get_plugin_manager, notify_status_changed

    pm = get_plugin_manager(settings)
    failed = []
    for referral_id, old, new in changes:
        try:
            failed += [(referral_id, f) for f in notify_status_changed(referral_id, old, new, pm)]
        except Exception:  # noqa: BLE001 - a notification never undoes a committed change
            log.exception("status notification failed for referral %s", referral_id)
    if failed:
        with Session(session.get_bind()) as record, record.begin():
            for referral_id, failure in failed:
                record_event(record, referral_id, "plugin_failed", actor="plugins",
                             reason=failure.message)


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop("status_changes", None)
