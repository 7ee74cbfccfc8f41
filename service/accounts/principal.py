"""Who is making a request: a practice (API key or practice user) or clinic staff."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from flask import current_app, g, request, session
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from refflow.accounts.practices import hash_key
from refflow.accounts.users import session_user
from refflow.db.models import ApiKey, utcnow
from refflow.ops.errors import ApiError


@dataclass(frozen=True)
class Principal:
    kind: str  # "practice" (API key or practice user) | "staff" | "admin"
    actor: str  # for timelines and the audit trail: "apikey:<prefix>", "user:<id>"
    practice_id: str | None = None  # set for practices: they see only their own
    user_id: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.kind in {"staff", "admin"}


def _db():
    return current_app.extensions["refflow.db"]


_KEYS = ApiKey.__table__
_LOOKUP = select(_KEYS.c.id, _KEYS.c.practice_id, _KEYS.c.prefix, _KEYS.c.last_used_at).where(
    _KEYS.c.key_hash == bindparam("key_hash"), _KEYS.c.revoked_at.is_(None))
_TOUCH = update(_KEYS).where(
    _KEYS.c.id == bindparam("key_id"),
    (_KEYS.c.last_used_at.is_(None)) | (_KEYS.c.last_used_at < bindparam("stale_before")),
).values(last_used_at=bindparam("now"))
LAST_USED_RESOLUTION = 60  # seconds: reads do not all become writes


log = logging.getLogger("refflow.auth")


def _key_principal(s: Session, token: str) -> Principal:
    """The practice behind a live (unrevoked) key: one indexed read, checked on
    every request (no cache), in the caller's transaction when it passes one."""
    row = None
    if token.startswith("rf_") and len(token) <= 200:
        conn = s.connection()
        row = conn.execute(_LOOKUP, {"key_hash": hash_key(token)}).first()
    if row is None:
        # recorded for the operator: the key's public prefix (never the secret) and
        # the client address; the rate limits bound how often this can be logged
        prefix = token.split("_")[1][:8] if token.startswith("rf_") and token.count("_") >= 2 \
            else "(not a refflow key)"
        log.warning("refused API key %s from %s: unknown or revoked", prefix,
                    request.remote_addr if request else "-")
        raise ApiError(401, "the API key is unknown or revoked",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    now = utcnow()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > LAST_USED_RESOLUTION:
        conn.execute(_TOUCH, {"key_id": row.id, "now": now,
                              "stale_before": now - dt.timedelta(seconds=LAST_USED_RESOLUTION)})
    return Principal("practice", f"apikey:{row.prefix}", row.practice_id)


def api_key_in(authorization: str) -> str | None:
    """The API key of a well-formed ``Authorization: Bearer rf_...`` header value."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token.startswith("rf_") and len(token) <= 200:
        return token
    return None


def uses_session_cookie() -> bool:
    """Whether the signed-in session cookie, not a key, authenticates this request.

    Any ``Authorization`` header at all means the cookie is never looked at
    (a malformed one is a 401), so only a request without one is cookie-
    authenticated: an ambient credential a browser sends by itself, which is
    why such a request must also prove it came from our pages (CSRF token,
    checked in ``refflow.web``)."""
    return not request.headers.get("Authorization") and bool(session.get("user_id"))


def principal_from_request(db_session: Session | None = None) -> Principal | None:
    """Bearer API key first, then a signed-in user's session.

    With ``db_session``, the key is looked up in that session's transaction (the
    intake does its lookup and its writes in one transaction)."""
    if "principal" in g:
        return g.principal
    principal = None
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "use 'Authorization: Bearer <api key>'",
                           headers={"WWW-Authenticate": 'Bearer realm="refflow"'})
        if db_session is not None:
            principal = _key_principal(db_session, token.strip())
        else:
            with _db().session() as s:
                principal = _key_principal(s, token.strip())
    elif uses_session_cookie():
        with _db().session() as s:
            user = session_user(s, session)
            if user is not None:
                kind = "practice" if user.role == "practice" else user.role
                principal = Principal(kind, f"user:{user.id}", user.practice_id, user.id)
    g.principal = principal
    return principal


def require_principal(db_session: Session | None = None) -> Principal:
    principal = principal_from_request(db_session)
    if principal is None:
        raise ApiError(401, "authentication required: send 'Authorization: Bearer <api key>'",
                       headers={"WWW-Authenticate": 'Bearer realm="refflow"'})
    return principal


def require_staff() -> Principal:
    principal = require_principal()
    if not principal.is_staff:
        raise ApiError(403, "only clinic staff may do this")
    return principal
