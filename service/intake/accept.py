"""Accepting a referral: one transaction writes the referral, its first
timeline event, the outbox message that starts the pipeline, the idempotency
record and the audit entry. Only after it commits does the API answer 202.

The rows are written with prebuilt Core INSERTs (ids set client-side, no ORM
unit of work); on PostgreSQL they go to the server as one statement (data-
modifying CTEs), so accepting a referral is one round trip plus the commit.
The unique constraint on (practice, Idempotency-Key) still decides between
concurrent requests: the losing statement fails as a whole, its transaction
rolls back, and the request answers with the winner's stored response.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from refflow.db.models import (
    AuditEntry,
    IdempotencyKey,
    OutboxMessage,
    Referral,
    ReferralEvent,
    new_id,
    utcnow,
)
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
    """Store a validated referral in a transaction of its own; returns (HTTP status, body)."""
    try:
        with db.session() as session:
            return accept_in(session, submitter, data, referral,
                             idempotency_key=idempotency_key, clinic_timezone=clinic_timezone,
                             find_problems=find_problems, retention=retention)
    except IntegrityError:
        if not idempotency_key:
            raise
        return replay_after_conflict(db, submitter, data, idempotency_key)


def accept_in(session: Session, submitter: Submitter, data: dict, referral: ReferralIn, *,
              idempotency_key: str | None, clinic_timezone: str,
              find_problems: ProblemFinder | None = None,
              retention: dt.timedelta = dt.timedelta(hours=48)) -> tuple[int, dict]:
    """Store a validated referral in the caller's transaction (which commits it).

    With an Idempotency-Key, a concurrent request that committed the same key
    first makes this raise ``IntegrityError``: roll back, then answer with
    ``replay_after_conflict``.
    """
    print_ = idempotency.fingerprint(data) if idempotency_key else ""
    if idempotency_key:
        stored = idempotency.replay(session, submitter.practice_id, idempotency_key, print_)
        if stored:
            return stored
    problems = find_problems(referral) if find_problems else []
    return _store(session, submitter, data, referral, print_, problems, idempotency_key,
                  clinic_timezone, retention)


def replay_after_conflict(db: Database, submitter: Submitter, data: dict,
                          idempotency_key: str) -> tuple[int, dict]:
    """Another request with the same key committed first: answer as it did."""
    print_ = idempotency.fingerprint(data)
    with db.session() as session:
        stored = idempotency.replay(session, submitter.practice_id, idempotency_key, print_)
    if stored is None:
        raise ApiError(409, "a request with this Idempotency-Key is still being processed",
                       code="idempotency_key_in_flight") from None
    return stored


# -- the INSERTs ----------------------------------------------------------------

def _inserts(with_outbox: bool, with_key: bool) -> list:
    r, e, a = Referral.__table__, ReferralEvent.__table__, AuditEntry.__table__
    o, k = OutboxMessage.__table__, IdempotencyKey.__table__
    rid, now = bindparam("rid", type_=r.c.id.type), bindparam("now", type_=r.c.created_at.type)
    actor = bindparam("actor", type_=e.c.actor.type)
    stmts = [
        insert(r).values(id=rid, practice_id=bindparam("practice_id"), status=states.RECEIVED,
                         external_id=bindparam("external_id"), urgency=bindparam("urgency"),
                         payload=bindparam("payload"), payload_sha256=bindparam("payload_sha256"),
                         received_on=bindparam("received_on"),
                         intake_problems=bindparam("intake_problems"),
                         flagged=bindparam("flagged"), request_id=bindparam("request_id"),
                         created_at=now, updated_at=now),
        insert(e).values(referral_id=rid, at=now, actor=actor, kind="status", from_status=None,
                         to_status=states.RECEIVED, reason="referral received"),
        insert(a).values(at=now, actor=actor, action="referral.create", referral_id=rid,
                         ip=bindparam("ip"), detail=None),
    ]
    if with_outbox:
        stmts.append(insert(o).values(task=PLAN_TASK, args=bindparam("outbox_args"),
                                      created_at=now, available_at=now, sent_at=None,
                                      relay_attempts=0))
    if with_key:
        stmts.append(insert(k).values(id=bindparam("key_id"), practice_id=bindparam("practice_id"),
                                      key=bindparam("key"), fingerprint=bindparam("fingerprint"),
                                      referral_id=rid, response_status=202,
                                      response_body=bindparam("response_body"), created_at=now,
                                      expires_at=bindparam("expires_at")))
    return stmts


@cache
def _statements(dialect: str, with_outbox: bool, with_key: bool) -> tuple:
    """The INSERTs for one referral: one statement on PostgreSQL, else one per table."""
    stmts = _inserts(with_outbox, with_key)
    if dialect != "postgresql":
        return tuple(stmts)
    *first, last = stmts
    for i, stmt in enumerate(first):
        last = last.add_cte(stmt.cte(f"ins_{i}"))
    return (last,)


def _store(session: Session, submitter: Submitter, data: dict, referral: ReferralIn, print_: str,
           problems: list[dict], idempotency_key: str | None, clinic_timezone: str,
           retention: dt.timedelta) -> tuple[int, dict]:
    now = utcnow()
    rid = new_id()
    rejects = [p for p in problems if p.get("severity") == "reject"]
    status = states.REJECTED if rejects else states.RECEIVED
    body = {
        "id": rid,
        "status": status,
        "external_id": referral.external_id,
        "created_at": now.isoformat(),
        "links": referral_links(rid),
    }
    if problems:
        body["problems"] = [
            {k: p[k] for k in ("code", "severity", "message", "field", "source") if k in p}
            for p in problems
        ]
    params = {
        "rid": rid, "now": now, "practice_id": submitter.practice_id,
        "external_id": referral.external_id, "urgency": referral.urgency,
        "payload": referral.model_dump(mode="json", exclude_none=True),
        "payload_sha256": hashlib.sha256(
            json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest(),
        "received_on": now.astimezone(_zone(clinic_timezone)).date(),
        "intake_problems": problems,
        "flagged": any(p.get("severity") == "needs_review" for p in problems),
        "request_id": submitter.request_id, "actor": submitter.actor, "ip": submitter.ip,
        "outbox_args": {"referral_id": rid},
    }
    if idempotency_key:
        params.update(key_id=new_id(), key=idempotency_key, fingerprint=print_,
                      response_body=body, expires_at=now + retention)
    conn = session.connection()
    for stmt in _statements(conn.dialect.name, not rejects, bool(idempotency_key)):
        conn.execute(stmt, params)  # a unique-key conflict surfaces here, in this transaction
    plugin_failures = [p for p in problems if p.get("code") == "plugin_failed"]
    for problem in plugin_failures:  # names the plugin and error class only
        states.record_event(session, rid, "plugin_failed", actor="intake-rules",
                            reason=problem["message"])
    if rejects:
        row = session.get(Referral, rid)
        codes = ", ".join(sorted({p["code"] for p in rejects}))
        states.transition(session, row, states.REJECTED, actor="intake-rules",
                          reason=f"failed intake rules: {codes}")
    if plugin_failures or rejects:
        session.flush()
    return 202, body


@lru_cache(maxsize=32)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
