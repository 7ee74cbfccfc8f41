"""Accepting a referral: one transaction writes the referral, its first
timeline event, the outbox message that starts the pipeline, the idempotency
record and the audit entry. Only after it commits does the API answer 202.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError

from refflow.db.models import AuditEntry, OutboxMessage, Referral, ReferralEvent, utcnow
from refflow.db.session import Database
from refflow.intake import idempotency
from refflow.intake.schemas import Referral as ReferralIn
from refflow.ops.errors import ApiError
from refflow.referrals import states

PLAN_TASK = "refflow.build_plan"


@dataclass(frozen=True)
class Submitter:
    practice_id: str
    actor: str  # "apikey:<prefix>" or "user:<id>"
    ip: str | None = None
    request_id: str | None = None


# problems(referral) -> [{"code", "severity": reject|needs_review|caution, "message", ...}]
ProblemFinder = Callable[[ReferralIn], list[dict]]


def referral_links(referral_id: str) -> dict:
    base = f"/api/v1/referrals/{referral_id}"
    return {"self": base, "plan": f"{base}/plan", "documents": f"{base}/documents",
            "cancel": f"{base}/cancel"}


def accept(db: Database, submitter: Submitter, data: dict, referral: ReferralIn, *,
           idempotency_key: str | None, clinic_timezone: str,
           find_problems: ProblemFinder | None = None,
           retention: dt.timedelta = dt.timedelta(hours=48)) -> tuple[int, dict]:
    """Store a validated referral; returns (HTTP status, response body)."""
    print_ = idempotency.fingerprint(data)
    if idempotency_key:
        with db.session() as session:
            stored = idempotency.replay(session, submitter.practice_id, idempotency_key, print_)
        if stored:
            return stored

    problems = find_problems(referral) if find_problems else []
    rejects = [p for p in problems if p.get("severity") == "reject"]
    try:
        with db.session() as session:
            return _store(session, submitter, data, referral, print_, problems, rejects,
                          idempotency_key, clinic_timezone, retention)
    except IntegrityError:
        if not idempotency_key:
            raise
        # Another request with the same key committed first: answer as it did.
        with db.session() as session:
            stored = idempotency.replay(session, submitter.practice_id, idempotency_key, print_)
        if stored is None:
            raise ApiError(409, "a request with this Idempotency-Key is still being processed",
                           code="idempotency_key_in_flight") from None
        return stored


def _store(session, submitter: Submitter, data: dict, referral: ReferralIn, print_: str,
           problems: list[dict], rejects: list[dict], idempotency_key: str | None,
           clinic_timezone: str, retention: dt.timedelta) -> tuple[int, dict]:
    now = utcnow()
    row = Referral(
        practice_id=submitter.practice_id,
        status=states.RECEIVED,
        external_id=referral.external_id,
        urgency=referral.urgency,
        payload=referral.model_dump(mode="json", exclude_none=True),
        payload_sha256=hashlib.sha256(
            json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest(),
        received_on=now.astimezone(ZoneInfo(clinic_timezone)).date(),
        intake_problems=problems,
        flagged=any(p.get("severity") == "needs_review" for p in problems),
        request_id=submitter.request_id,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    session.add(ReferralEvent(referral_id=row.id, at=now, actor=submitter.actor, kind="status",
                              from_status=None, to_status=states.RECEIVED,
                              reason="referral received"))
    session.add(AuditEntry(actor=submitter.actor, action="referral.create", referral_id=row.id,
                           ip=submitter.ip))
    for problem in problems:
        if problem.get("code") == "plugin_failed":  # names the plugin and error class only
            states.record_event(session, row.id, "plugin_failed", actor="intake-rules",
                                reason=problem["message"])
    if rejects:
        codes = ", ".join(sorted({p["code"] for p in rejects}))
        states.transition(session, row, states.REJECTED, actor="intake-rules",
                          reason=f"failed intake rules: {codes}")
    else:
        session.add(OutboxMessage(task=PLAN_TASK, args={"referral_id": row.id}, created_at=now))
    body = {
        "id": row.id,
        "status": row.status,
        "external_id": row.external_id,
        "created_at": row.created_at.isoformat(),
        "links": referral_links(row.id),
    }
    if problems:
        body["problems"] = [
            {k: p[k] for k in ("code", "severity", "message", "field", "source") if k in p}
            for p in problems
        ]
    if idempotency_key:
        idempotency.remember(session, submitter.practice_id, idempotency_key, print_, row.id, 202,
                             body, retention)
    session.flush()  # surface a unique-key conflict inside this transaction
    return 202, body
