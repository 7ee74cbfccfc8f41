"""Single sign-on for staff through OpenID Connect (optional; passwords still work).

Configured by ``REFFLOW_OIDC_ISSUER``, ``REFFLOW_OIDC_CLIENT_ID`` and
``REFFLOW_OIDC_CLIENT_SECRET`` (and ``REFFLOW_OIDC_PROVIDER_NAME`` for the
button). Authlib's Flask client does the protocol: the provider's endpoints and
keys come from ``<issuer>/.well-known/openid-configuration``; the browser goes
through the authorization code flow with PKCE (S256), a ``state`` and a
``nonce`` kept in the signed session; the code is exchanged at the token
endpoint with the client secret, and the ID token's signature (the provider's
JWKS), issuer, audience, expiry and nonce are checked. Which refflow user it
is, is ``refflow.accounts.single_sign_on``'s decision (staff only, made by an
administrator first, linked on first use, never a disabled one).

``GET /login/oidc`` starts (a link, not a form: the page's CSP allows forms
to post only to this site), ``GET /login/oidc/callback`` finishes.
"""

from __future__ import annotations

import logging

import requests
from authlib.integrations.flask_client import OAuth, OAuthError
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from joserfc.errors import JoseError

from refflow.accounts.single_sign_on import SignOnRefused, signed_on_user
from refflow.db.models import AuditEntry, utcnow
from refflow.web.auth import begin_session, current_user, home_for, safe_next

bp = Blueprint("oidc", __name__)

log = logging.getLogger("refflow.signin")

SCOPE = "openid email profile"
NEXT_KEY = "oidc_next"  # where to go after signing in, kept in the session meanwhile


def init_app(app: Flask) -> None:
    """Register the sign-on pages; the provider's client only when configured."""
    settings = app.extensions["refflow.settings"]
    app.register_blueprint(bp)
    name = settings.oidc_provider_name if settings.oidc_issuer else None

    @app.context_processor
    def _single_sign_on() -> dict:
        return {"single_sign_on": name}

    if not settings.oidc_issuer:
        return
    oauth = OAuth(app)
    oauth.register(
        "refflow_oidc",
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        server_metadata_url=settings.oidc_issuer.rstrip("/")
        + "/.well-known/openid-configuration",
        client_kwargs={"scope": SCOPE, "code_challenge_method": "S256", "timeout": 10},
    )
    app.extensions["refflow.oidc"] = oauth.create_client("refflow_oidc")


def _client():
    client = current_app.extensions.get("refflow.oidc")
    if client is None:
        abort(404)  # single sign-on is not configured
    return client


def _db():
    return current_app.extensions["refflow.db"]


def _refused(message: str, status: int):
    return render_template("login.html", email="", next=None, error=message), status


@bp.get("/login/oidc")
def start():
    client = _client()
    user = current_user()
    if user is not None:
        return redirect(home_for(user))
    nxt = safe_next(request.args.get("next"))
    try:
        response = client.authorize_redirect(url_for("oidc.callback", _external=True))
    except requests.RequestException as exc:
        log.warning("single sign-on: the provider's configuration could not be read: %s",
                    type(exc).__name__)
        return _refused("The sign-in provider could not be reached. Try again in a moment, "
                        "or sign in with your password.", 502)
    session.pop(NEXT_KEY, None)
    if nxt:
        session[NEXT_KEY] = nxt
    return response


@bp.get("/login/oidc/callback")
def callback():
    client = _client()
    nxt = session.pop(NEXT_KEY, None)
    try:
        token = client.authorize_access_token()
    except (OAuthError, JoseError) as exc:
        log.warning("single sign-on refused: %s", type(exc).__name__)
        _audit("anonymous", "login.failed", f"single sign-on: {type(exc).__name__}"[:500])
        return _refused("Single sign-on did not complete (the answer from the sign-in "
                        "provider was refused). Start again from this page.", 400)
    except requests.RequestException as exc:
        log.warning("single sign-on: the token request failed: %s", type(exc).__name__)
        return _refused("The sign-in provider could not be reached. Try again in a moment, "
                        "or sign in with your password.", 502)
    claims = token.get("userinfo") or {}
    with _db().session() as s:
        try:
            user = signed_on_user(s, claims.get("iss", ""), claims.get("sub", ""),
                                  claims.get("email"), claims.get("email_verified"))
        except SignOnRefused as refused:
            failure = refused
        else:
            failure = None
            user.last_login_at = utcnow()
            s.add(AuditEntry(actor=f"user:{user.id}", action="login", ip=request.remote_addr,
                             detail="single sign-on"))
            user_id, role, epoch = user.id, user.role, user.session_epoch
    if failure is not None:
        _audit("anonymous", "login.failed", f"single sign-on: {failure.code}")
        return _refused(str(failure), 403)
    return begin_session(user_id, role, epoch, safe_next(nxt))


def _audit(actor: str, action: str, detail: str) -> None:
    with _db().session() as s:
        s.add(AuditEntry(actor=actor, action=action, ip=request.remote_addr, detail=detail))
