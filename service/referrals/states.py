"""The referral state machine. Every status change goes through ``transition``:
it checks the move is allowed, applies it with a conditional UPDATE (so two
workers cannot both make the same move), and writes the timeline event in the
same transaction. Listeners registered with ``on_status_changed`` run after
the transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from refflow.db.models import Referral, ReferralEvent, utcnow

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
    DELIVERING: frozenset({COMPLETED, FAILED}),
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
    result = session.execute(
        update(Referral)
        .where(Referral.id == referral.id, Referral.status == current)
        .values(status=new, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.refresh(referral, ["status"])
        raise IllegalTransition(referral.id, referral.status, new)
    # Keep the loaded object in step with the UPDATE without marking it dirty
    # (which would make the ORM write the same values a second time).
    set_committed_value(referral, "status", new)
    set_committed_value(referral, "updated_at", now)
    entry = ReferralEvent(referral_id=referral.id, at=now, actor=actor, kind="status",
                          from_status=current, to_status=new, reason=reason)
    session.add(entry)
    session.info.setdefault("status_changes", []).append((referral.id, current, new))
    return entry


def record_event(session: Session, referral_id: str, kind: str, *, actor: str,
                 reason: str | None = None) -> ReferralEvent:
    """A timeline entry that is not a status change (retry, plugin error, note…)."""
    entry = ReferralEvent(referral_id=referral_id, actor=actor, kind=kind, reason=reason)
    session.add(entry)
    return entry


_listeners: dict[str, Callable[[str, str, str], None]] = {}


def on_status_changed(name: str, listener: Callable[[str, str, str], None]) -> None:
    """Call ``listener(referral_id, old, new)`` after each committed status change.

    Registering again under the same ``name`` replaces the earlier listener.
    """
    _listeners[name] = listener


@event.listens_for(Session, "after_commit")
def _notify_after_commit(session: Session) -> None:
    changes = session.info.pop("status_changes", None)
    if changes:
        notify_status_changed(changes)


def notify_status_changed(changes: list[tuple[str, str, str]]) -> None:
    """Call the listeners for status changes that have been committed (for code
    that writes them without a Session, e.g. the PostgreSQL delivery path)."""
    for referral_id, old, new in changes:
        for listener in list(_listeners.values()):
            try:
                listener(referral_id, old, new)
            except Exception:  # a notification never undoes a committed change
                logging.getLogger("refflow.referrals").exception(
                    "status listener failed for referral %s", referral_id)


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop("status_changes", None)
