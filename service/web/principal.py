"""The principal of an HTTP request: a Bearer API key first, then a signed-in
user's session cookie (``refflow.accounts.principal`` decides who they are)."""

from __future__ import annotations

from flask import current_app, g, request, session
from sqlalchemy.orm import Session

from refflow.accounts.principal import Principal, key_principal, user_principal
from refflow.accounts.users import session_user
from refflow.web.errors import ApiError


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
    db = current_app.extensions["refflow.db"]
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "use 'Authorization: Bearer <api key>'",
                           headers={"WWW-Authenticate": 'Bearer realm="refflow"'})
        if db_session is not None:
            principal = key_principal(db_session, token.strip(), request.remote_addr)
        else:
            with db.session() as s:
                principal = key_principal(s, token.strip(), request.remote_addr)
        if principal is None:
            raise ApiError(401, "the API key is unknown or revoked",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    elif uses_session_cookie():
        with db.session() as s:
            user = session_user(s, session)
            if user is not None:
                principal = user_principal(user)
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
