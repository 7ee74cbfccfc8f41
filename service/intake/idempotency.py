"""Idempotency-Key handling (IETF draft semantics), per practice.

The key row is written in the same transaction as the referral, and a unique
constraint on (practice, key) stands behind it. Requests with the same key
take turns: on PostgreSQL a request first claims its key for its transaction
(an advisory lock on practice and key, ``claim``), and a request whose key
another one holds (the first still in flight) gets ``IdempotencyInFlight`` at
once, as the draft says; one that comes after the first committed replays the
stored answer. On SQLite writers take turns anyway (``BEGIN IMMEDIATE``), so a
second request only starts after the first committed, and replays it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from sqlalchemy import delete, func, literal, select
from sqlalchemy.orm import Session

from refflow.db.models import IdempotencyKey, utcnow

MAX_KEY_LENGTH = 255


class InvalidIdempotencyKey(ValueError):
    """The Idempotency-Key header is empty, too long or not printable."""


class IdempotencyConflict(Exception):
    """The key was already used with a different request body."""


class IdempotencyInFlight(Exception):
    """A request with this key is still being processed."""


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
        raise InvalidIdempotencyKey(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters")
    return key


def claim(session: Session, practice_id: str, key: str) -> None:
    """Claim the key for this transaction (PostgreSQL: an advisory lock that
    ends with the transaction); ``IdempotencyInFlight`` while another request
    with it holds the claim."""
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite: this transaction already holds the database's write lock
    lock = func.pg_try_advisory_xact_lock(
        func.hashtextextended(literal(practice_id) + literal(":") + literal(key), 0))
    if not session.scalar(select(lock)):
        raise IdempotencyInFlight()


def replay(session: Session, practice_id: str, key: str, print_: str) -> dict | None:
    """The stored answer (the 202 body) for this key, or None when the key is new.

    Raises ``IdempotencyConflict`` when the key was used with a different body.
    """
    row = session.scalar(select(IdempotencyKey).where(
        IdempotencyKey.practice_id == practice_id, IdempotencyKey.key == key))
    if row is None:
        return None
    if row.fingerprint != print_:
        raise IdempotencyConflict()
    return row.response_body


def remember(session: Session, practice_id: str, key: str, print_: str, referral_id: str,
             body: dict, retention: dt.timedelta) -> None:
    """Store the 202 answer for this key (in the transaction that wrote the referral)."""
    now = utcnow()
    session.add(IdempotencyKey(practice_id=practice_id, key=key, fingerprint=print_,
                               referral_id=referral_id, response_status=202,
                               response_body=body, created_at=now, expires_at=now + retention))


def expire(session: Session, now: dt.datetime | None = None) -> int:
    """Delete keys past their retention; returns how many."""
    result = session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.expires_at < (now or utcnow())))
    return result.rowcount or 0
