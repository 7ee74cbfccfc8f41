"""Who is making a request: a practice (API key or practice user) or clinic staff."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from refflow.accounts.practices import hash_key
from refflow.db.models import ApiKey, User, utcnow

LAST_USED_RESOLUTION = 60  # seconds: reads do not all become writes

log = logging.getLogger("refflow.auth")


@dataclass(frozen=True)
class Principal:
    kind: str  # "practice" (API key or practice user) | "staff" | "admin"
    actor: str  # for timelines and the audit trail: "apikey:<prefix>", "user:<id>"
    practice_id: str | None = None  # set for practices: they see only their own
    user_id: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.kind in {"staff", "admin"}


def key_principal(session: Session, token: str, client: str | None = None) -> Principal | None:
    """The practice behind a live (unrevoked) API key, or None: one indexed
    read, checked on every request (no cache). A refused key is logged for
    the operator by its public prefix (never the secret) and ``client``."""
    row = None
    if token.startswith("rf_") and len(token) <= 200:
        row = session.execute(select(ApiKey.id, ApiKey.practice_id, ApiKey.prefix,
                                     ApiKey.last_used_at)
                              .where(ApiKey.key_hash == hash_key(token),
                                     ApiKey.revoked_at.is_(None))).first()
    if row is None:
        prefix = token.split("_")[1][:8] if token.startswith("rf_") and token.count("_") >= 2 \
            else "(not a refflow key)"
        log.warning("refused API key %s from %s: unknown or revoked", prefix, client or "-")
        return None
    now = utcnow()
    stale_before = now - dt.timedelta(seconds=LAST_USED_RESOLUTION)
    if row.last_used_at is None or row.last_used_at < stale_before:
        session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now)
                        .execution_options(synchronize_session=False))
    return Principal("practice", f"apikey:{row.prefix}", row.practice_id)


def user_principal(user: User) -> Principal:
    """The principal of a signed-in user."""
    kind = "practice" if user.role == "practice" else user.role
    return Principal(kind, f"user:{user.id}", user.practice_id, user.id)
