"""The staff dashboard, the referring-office portal and sign-in (server-rendered).

Pages are Flask/Jinja with one stylesheet and one small script from
``static/`` (no inline script or style, so a strict CSP holds). Every form
carries a CSRF token (Flask-WTF).

The JSON API blueprints are exempt from the form check (they never read a
form field) but not from CSRF: a request with an ``Authorization`` header is
authenticated by its Bearer key, which a browser never sends on its own, and
needs no token; any other state-changing API request that the signed-in
session cookie authenticates must carry the session's CSRF token in an
``X-CSRFToken`` (or ``X-CSRF-Token``) header, else it is refused with 403
``csrf_token_missing`` or ``csrf_failed`` in the JSON error envelope. A body
is no proof: the staff actions accept an empty one, which a form on another
origin of the same site (another port, a sibling subdomain; SameSite=Lax does
not stop those) can send with the cookie.
"""

from __future__ import annotations

import datetime as dt
import time

from flask import Blueprint, Flask, abort, g, render_template, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect

from refflow.web import formatting

# Blueprints of the JSON API: no form token; a cookie session's token goes in a
# header instead (``_api_session_csrf``).
API_BLUEPRINTS = ("referrals_api", "staff_api", "plugins_api", "health", "fhir")
# A signed-in session ends after this long even when used all the time.
ABSOLUTE_SESSION_SECONDS = 12 * 3600
# Methods that change nothing, so need no CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Requests the page makes on its own (auto-refresh) do not count as activity.
POLL_HEADER = "X-Refflow-Poll"

csrf = CSRFProtect()
# Templates and the stylesheet/script of every page (served at /web-static/).
assets = Blueprint("web", __name__, template_folder="templates", static_folder="static",
                   static_url_path="/web-static")


class SessionInterface(SecureCookieSessionInterface):
    """The signed cookie session, marked Secure whenever the request came over TLS.

    A request without a session cookie (every API call with a Bearer key) gets
    a new empty session without building a signing serializer, and an empty,
    unchanged session is not saved: what the base class does, at less cost."""

    def open_session(self, app: Flask, request):
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response) -> None:
        if not session and not session.modified:
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config.get("SESSION_COOKIE_SECURE"):
            return True
        try:
            return request.is_secure
        except RuntimeError:  # outside a request
            return False


def init_app(app: Flask) -> None:
    """Register the web pages on ``app`` (called by ``create_app``)."""
    from refflow.web import (
        auth,
        fax_inbox,
        oidc,
        paper_forms,
        patient,
        portal,
        refused_reads,
        reports,
        staff,
        users,
    )
    from refflow.web.principal import uses_session_cookie
    from refflow.web.shared_reading import SharedReading

    settings = app.extensions["refflow.settings"]
    app.extensions["refflow.queue_readings"] = SharedReading(staff.QUEUE_SHARED_SECONDS)
    app.session_interface = SessionInterface()
    # Idle expiry is checked here from the session's own "seen" time (so the
    # page can say why you were signed out); the cookie itself lives up to the
    # absolute limit.
    app.config["PERMANENT_SESSION_LIFETIME"] = dt.timedelta(seconds=ABSOLUTE_SESSION_SECONDS)
    if not settings.embedded:
        app.config["SESSION_COOKIE_SECURE"] = True  # production: never over plain HTTP
        # __Host-: the browser keeps it only when set over TLS, for this host
        # and path /, so no sibling subdomain can plant or shadow it
        app.config["SESSION_COOKIE_NAME"] = "__Host-" + app.config["SESSION_COOKIE_NAME"]
    # The token lives as long as the (idle-limited) session; Referer checks
    # would fail under Referrer-Policy: no-referrer, so Origin is checked below.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    app.config["WTF_CSRF_SSL_STRICT"] = False

    csrf.init_app(app)
    for name, blueprint in list(app.blueprints.items()):
        if name in API_BLUEPRINTS or (blueprint.url_prefix or "").startswith("/api"):
            csrf.exempt(blueprint)

    app.register_blueprint(assets)
    app.register_blueprint(auth.bp)
    oidc.init_app(app)  # single sign-on, when configured
    refused_reads.init_app(app)  # a referral refused to its caller: on the audit trail
    app.register_blueprint(staff.bp)
    app.register_blueprint(portal.bp)
    app.register_blueprint(fax_inbox.bp)
    app.register_blueprint(reports.bp)
    app.register_blueprint(paper_forms.bp)
    app.register_blueprint(patient.bp)
    app.register_blueprint(users.bp)  # admins only
    formatting.init_app(app, settings)

    @app.before_request
    def _session_idle_expiry() -> None:
        if not session.get("user_id"):
            return
        now = int(time.time())
        seen = session.get("seen", now)
        since = session.get("since", now)
        idle = settings.session_idle_minutes * 60
        if now - seen > idle or now - since > ABSOLUTE_SESSION_SECONDS:
            session.clear()
            g.session_expired = True
            return
        if request.headers.get(POLL_HEADER) != "1":
            session["seen"] = now
        session.setdefault("since", since)

    @app.before_request
    def _api_session_csrf() -> None:
        """A state-changing API request authenticated by the session cookie
        (no Authorization header) must carry the CSRF token in a header.

        After the idle expiry above: an expired session was cleared there, and
        its request gets the API's 401 instead."""
        if request.method in SAFE_METHODS or not is_api_request():
            return
        if app.config.get("WTF_CSRF_ENABLED", True) and uses_session_cookie():
            check_csrf_header()

    @app.before_request
    def _same_origin_forms() -> None:
        """A browser form post must come from our own origin (when the browser says)."""
        if request.method in SAFE_METHODS:
            return
        if is_api_request():
            return
        origin = request.headers.get("Origin")
        if origin and origin != "null" and origin != request.host_url.rstrip("/"):
            abort(403, "This form was sent from another site.")

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError):
        return error_page(400, "This form could not be accepted because its security token "
                               "is missing or has expired. Go back, reload the page and "
                               "try again.")


def is_api_request() -> bool:
    """Whether this request goes to the JSON API (exempt from the form check)."""
    return request.blueprint in API_BLUEPRINTS or request.path.startswith("/api/")


def check_csrf_header() -> None:
    """Refuse (403, JSON envelope) an API request without this session's CSRF
    token in an ``X-CSRFToken``/``X-CSRF-Token`` header. The form field is not
    read: the API takes JSON, and the token belongs in a header there."""
    from flask import current_app
    from flask_wtf.csrf import validate_csrf
    from wtforms import ValidationError

    from refflow.web.errors import ApiError

    names = current_app.config.get("WTF_CSRF_HEADERS") or ["X-CSRFToken", "X-CSRF-Token"]
    token = next((request.headers[n] for n in names if request.headers.get(n)), None)
    if token is None:
        raise ApiError(403, "a signed-in session must send its CSRF token in an X-CSRFToken "
                            "header (or use an API key)", code="csrf_token_missing")
    try:
        validate_csrf(token)
    except ValidationError as exc:
        reason = exc.args[0] if exc.args else "The CSRF token is invalid."
        raise ApiError(403, f"the X-CSRFToken header was refused: {reason} Reload the page "
                            "for a new token.", code="csrf_failed") from None


def error_page(status: int, message: str):
    """An HTML error page for browser requests."""
    from flask import make_response

    titles = {400: "The request could not be accepted", 401: "Please sign in",
              403: "Not allowed", 404: "Page not found", 405: "Not allowed here",
              413: "Too large", 429: "Too many attempts", 500: "Something went wrong"}
    if status == 404:
        message = "There is no page at this address, or you do not have access to it."
    try:
        from refflow.web.auth import current_user

        try:
            user = current_user()
        except Exception:  # noqa: BLE001 - e.g. the database is down
            user = None
        body = render_template("error.html", user=user, status=status, title=titles.get(status, "Error"),
                               message=message)
    except Exception:  # noqa: BLE001 - the error page must never fail itself
        from markupsafe import escape

        body = (f"<!doctype html><title>{status}</title><h1>{status}</h1>"
                f"<p>{escape(message)}</p>")
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    return response
