"""Idempotency-Key handling (IETF draft semantics), per practice.

The key row is written in the same transaction as the referral; a unique
constraint on (practice, key) — not a check-then-insert — decides which of
several concurrent requests creates the referral. On PostgreSQL a request
first claims its key for its transaction (an advisory lock on practice and
key, ``claim``): a request whose key another request holds — the first one
still in flight — is answered 409 at once, as the draft says; one that comes
after the first committed answers with the stored response. (On SQLite,
writers take turns, so a second request only starts after the first
committed, and replays it.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from sqlalchemy import delete, func, literal, select
from sqlalchemy.orm import Session

from refflow.db.models import IdempotencyKey, utcnow
from refflow.ops.errors import ApiError

MAX_KEY_LENGTH = 255


def fingerprint(data: object) -> str:
    """A hash of the request body that ignores whitespace and key order."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    # The draft sends the key as a structured-field string: accept it quoted too.
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ApiError(400, f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters",
                       code="invalid_idempotency_key")
    return key


def claim_sql(practice_id, key):
    """The SQL expression that claims (practice, key) for the current
    transaction: true when claimed, false while another transaction holds it."""
    return func.pg_try_advisory_xact_lock(
        func.hashtextextended(practice_id + literal(":") + key, 0))


def claim(session: Session, practice_id: str, key: str) -> None:
    """Claim the key for this transaction (PostgreSQL); 409 while a request
    with it is still in flight."""
    if session.get_bind().dialect.name != "postgresql":
        return
    if not session.scalar(select(claim_sql(literal(practice_id), literal(key)))):
        raise ApiError(409, "a request with this Idempotency-Key is still being processed",
                       code="idempotency_key_in_flight")


def replay(session: Session, practice_id: str, key: str, print_: str):
    """The stored (status, body) for this key, or None when the key is new.

    Raises 422 when the key was used with a different body.
    """
    row = session.scalar(select(IdempotencyKey).where(
        IdempotencyKey.practice_id == practice_id, IdempotencyKey.key == key))
    if row is None:
        return None
    if row.fingerprint != print_:
        raise ApiError(422, "this Idempotency-Key was already used with a different request body",
                       code="idempotency_key_reused")
    return row.response_status, row.response_body


def remember(session: Session, practice_id: str, key: str, print_: str, referral_id: str,
             status: int, body: dict, retention: dt.timedelta) -> None:
    now = utcnow()
    session.add(IdempotencyKey(practice_id=practice_id, key=key, fingerprint=print_,
                               referral_id=referral_id, response_status=status,
                               response_body=body, created_at=now, expires_at=now + retention))


def expire(session: Session, now: dt.datetime | None = None) -> int:
    """Delete keys past their retention; returns how many."""
    result = session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.expires_at < (now or utcnow())))
    return result.rowcount or 0
