"""Who is making a request: a practice (API key or practice user) or clinic staff."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g, request, session

from refflow.accounts.practices import authenticate_key
from refflow.db.models import User, utcnow
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


def principal_from_request() -> Principal | None:
    """Bearer API key first, then a signed-in user's session."""
    if "principal" in g:
        return g.principal
    principal = None
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "use 'Authorization: Bearer <api key>'",
                           headers={"WWW-Authenticate": 'Bearer realm="refflow"'})
        with _db().session() as s:
            key = authenticate_key(s, token.strip())
            if key is None:
                raise ApiError(401, "the API key is unknown or revoked",
                               headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
            now = utcnow()
            if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
                key.last_used_at = now  # coarse, so reads do not all become writes
            principal = Principal("practice", f"apikey:{key.prefix}", key.practice_id)
    elif session.get("user_id"):
        with _db().session() as s:
            user = s.get(User, session["user_id"])
            if user is not None and user.active:
                kind = "practice" if user.role == "practice" else user.role
                principal = Principal(kind, f"user:{user.id}", user.practice_id, user.id)
    g.principal = principal
    return principal


def require_principal() -> Principal:
    principal = principal_from_request()
    if principal is None:
        raise ApiError(401, "authentication required: send 'Authorization: Bearer <api key>'",
                       headers={"WWW-Authenticate": 'Bearer realm="refflow"'})
    return principal


def require_staff() -> Principal:
    principal = require_principal()
    if not principal.is_staff:
        raise ApiError(403, "only clinic staff may do this")
    return principal
