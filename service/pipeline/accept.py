"""Accepting a referral: one transaction writes the referral, its first
timeline event, the outbox message that starts the pipeline, the idempotency
record and the audit entry. The caller answers 202 only after it commits.

The same code runs on SQLite and PostgreSQL (the ORM's unit of work). With an
Idempotency-Key, a key already used with the same body replays the stored
answer (nothing is written), one used with a different body raises
``IdempotencyConflict``, and one whose first request is still in flight
raises ``IdempotencyInFlight`` (see ``refflow.intake.idempotency``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from refflow.db.models import AuditEntry, Referral, new_id, utcnow
from refflow.db.session import Database
from refflow.intake import idempotency
from refflow.intake.schemas import Referral as ReferralIn
from refflow.pipeline import outbox
from refflow.referrals import states
from refflow.referrals.queries import referral_links


@dataclass(frozen=True)
class Submitter:
    practice_id: str
    actor: str  # "apikey:<prefix>" or "user:<id>"
    ip: str | None = None
    request_id: str | None = None


# problems(referral) -> [{"code", "severity": reject|needs_review|caution, "message", ...}]
ProblemFinder = Callable[[ReferralIn], list[dict]]


def accept(db: Database, submitter: Submitter, data: dict, referral: ReferralIn, *,
           idempotency_key: str | None, clinic_timezone: str,
           find_problems: ProblemFinder | None = None,
           retention: dt.timedelta = dt.timedelta(hours=48)) -> dict:
    """Store a validated referral in a transaction of its own; returns the 202 body."""
    try:
        with db.session() as session:
            return accept_in(session, submitter, data, referral,
                             idempotency_key=idempotency_key, clinic_timezone=clinic_timezone,
                             find_problems=find_problems, retention=retention)
    except IntegrityError:
        if idempotency_key is None:
            raise
        # the unique (practice, key) index stopped a second copy: another
        # request with this key got in first (the claim makes this rare)
        raise idempotency.IdempotencyInFlight() from None


def accept_in(session: Session, submitter: Submitter, data: dict, referral: ReferralIn, *,
              idempotency_key: str | None, clinic_timezone: str,
              find_problems: ProblemFinder | None = None,
              retention: dt.timedelta = dt.timedelta(hours=48)) -> dict:
    """Store a validated referral in the caller's transaction (which commits
    it); returns the 202 body. A concurrent request that stored the same
    Idempotency-Key first makes the commit raise ``IntegrityError``."""
    fingerprint = ""
    if idempotency_key:
        fingerprint = idempotency.fingerprint(data)
        idempotency.claim(session, submitter.practice_id, idempotency_key)
        stored = idempotency.replay(session, submitter.practice_id, idempotency_key, fingerprint)
        if stored is not None:
            return stored
    problems = find_problems(referral) if find_problems else []
    problems += _possible_duplicate(session, submitter.practice_id, referral.external_id,
                                    clinic_timezone)
    rejects = [p for p in problems if p.get("severity") == "reject"]
    now = utcnow()
    payload = referral.model_dump(mode="json", exclude_none=True)  # normalised (E.164, ...)
    row = Referral(
        id=new_id(), practice_id=submitter.practice_id, status=states.RECEIVED,
        external_id=referral.external_id, urgency=referral.urgency, payload=payload,
        payload_sha256=hashlib.sha256(referral.model_dump_json(exclude_none=True).encode())
        .hexdigest(),
        received_on=now.astimezone(ZoneInfo(clinic_timezone)).date(),
        intake_problems=problems,
        flagged=any(p.get("severity") == "needs_review" for p in problems),
        request_id=submitter.request_id, created_at=now, updated_at=now)
    session.add(row)
    session.flush()  # the referral row first: the rows below refer to it
    states.created(session, row, actor=submitter.actor, reason="referral received")
    session.add(AuditEntry(at=now, actor=submitter.actor, action="referral.create",
                           referral_id=row.id, ip=submitter.ip))
    for problem in problems:
        if problem.get("code") == "plugin_failed":  # names the plugin and error class only
            states.record_event(session, row.id, "plugin_failed", actor="intake-rules",
                                reason=problem["message"])
    if rejects:
        codes = ", ".join(sorted({p["code"] for p in rejects}))
        states.transition(session, row, states.REJECTED, actor="intake-rules",
                          reason=f"failed intake rules: {codes}")
    else:
        # the request id rides with the message, so the worker's logs carry it
        outbox.enqueue(session, outbox.BUILD_PLAN, outbox.message_args(
            referral_id=row.id, request_id=submitter.request_id))
    body = {"id": row.id, "status": row.status, "external_id": referral.external_id,
            "created_at": now.isoformat(), "links": referral_links(row.id)}
    if problems:
        body["problems"] = [
            {k: p[k] for k in ("code", "severity", "message", "field", "source", "duplicate_of")
             if k in p}
            for p in problems
        ]
    if idempotency_key:
        idempotency.remember(session, submitter.practice_id, idempotency_key, fingerprint,
                             row.id, body, retention)
    session.flush()
    return body


def _possible_duplicate(session: Session, practice_id: str, external_id: str | None,
                        clinic_timezone: str) -> list[dict]:
    """A problem when the practice sent a referral with this ``external_id``
    before (without an Idempotency-Key replay): it is accepted, and a
    clinician decides whether it is a copy before anything is sent twice."""
    if not external_id:
        return []
    earlier = session.execute(
        select(Referral.id, Referral.created_at)
        .where(Referral.practice_id == practice_id, Referral.external_id == external_id)
        .order_by(Referral.created_at, Referral.id).limit(1)).first()
    if earlier is None:
        return []
    day = earlier.created_at.astimezone(ZoneInfo(clinic_timezone)).date().isoformat()
    return [{"code": "possible_duplicate", "severity": "needs_review", "source": "intake",
             "duplicate_of": earlier.id,
             "message": f"Possible duplicate: the practice sent a referral with the same "
                        f"reference on {day}. Check it is not a copy before approving."}]
