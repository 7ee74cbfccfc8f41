"""The transactional outbox: a message is written in the same transaction as
the change that causes it, and the relay publishes it to the broker after
commit. A broker outage therefore loses nothing: the rows wait, and the relay
sends them when the broker is back. Publishing twice is harmless because every
task is idempotent.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from refflow.db.models import OutboxMessage, utcnow
from refflow.db.session import Database

log = logging.getLogger("refflow.outbox")

# publish(task_name, args) sends one message to the broker or raises.
Publisher = Callable[[str, dict], None]

# The tasks a message names (the worker registers a Celery task under each).
BUILD_PLAN = "refflow.build_plan"
RENDER = "refflow.render_documents"
DELIVER = "refflow.deliver"
FINALIZE = "refflow.finalize"
CHECK_DELIVERY = "refflow.check_delivery"  # follow a delivery the provider holds (a fax job)
READ_FAX = "refflow.read_fax"  # OCR and form reading of a received fax
SEND_WEBHOOK = "refflow.send_webhook"  # one signed event to one practice endpoint


def message_args(*, request_id: str | None = None, **ids: str) -> dict:
    """A message's arguments: the ids the task takes, and the request id that
    started the work (the publisher sends it as a header, not as an argument)."""
    return {**ids, "request_id": request_id} if request_id else dict(ids)


def enqueue(session: Session, task: str, args: dict, *,
            available_at: dt.datetime | None = None) -> OutboxMessage:
    now = utcnow()
    message = OutboxMessage(task=task, args=args, created_at=now,
                            available_at=available_at or now)
    session.add(message)
    return message


def relay(db: Database, publish: Publisher, *, ids: list[int] | None = None,
          limit: int = 200) -> int:
    """Publish due, unsent messages and mark them sent; returns how many.

    ``ids`` limits the round to those messages (a worker relays what it has
    just written; the scheduler's rounds take everything due). Rows are locked
    while they are published (``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
    SQLite's write transaction does the same), so several relays may run at
    once without sending a row twice. Stops at the first publish error and
    leaves the rest for the next round.
    """
    if ids is not None and not ids:
        return 0
    sent = 0
    with db.session() as session:
        query = (select(OutboxMessage)
                 .where(OutboxMessage.sent_at.is_(None), OutboxMessage.available_at <= utcnow())
                 .order_by(OutboxMessage.available_at, OutboxMessage.id).limit(limit)
                 .with_for_update(skip_locked=True))
        if ids is not None:
            query = query.where(OutboxMessage.id.in_(ids))
        messages = session.scalars(query).all()
        for message in messages:
            try:
                publish(message.task, dict(message.args))
            except Exception as exc:  # noqa: BLE001 - broker down: try again next round
                message.relay_attempts += 1
                _broker_unavailable(exc, len(messages) - sent)
                break
            message.sent_at = utcnow()
            sent += 1
    return sent


def _broker_unavailable(exc: Exception, waiting: int) -> None:
    log.warning("outbox relay: broker unavailable (%s); %d message(s) wait",
                type(exc).__name__, waiting)


def backlog(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(OutboxMessage)
                          .where(OutboxMessage.sent_at.is_(None))) or 0


def prune(db: Database, older_than: dt.timedelta = dt.timedelta(days=7)) -> int:
    """Delete sent messages older than ``older_than``."""
    with db.session() as session:
        result = session.execute(delete(OutboxMessage).where(
            OutboxMessage.sent_at.is_not(None), OutboxMessage.sent_at < utcnow() - older_than))
        return result.rowcount or 0

