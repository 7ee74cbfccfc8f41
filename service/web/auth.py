"""Sign-in and sign-out, the signed-in user, and the page guards.

Passwords are checked with argon2 (``verify_login``). Sign-in starts a fresh
session (the old one, and its CSRF token, are dropped). Failed sign-ins are
counted per account and per client address in Redis (``signin_throttle``): a
few tries, then a growing delay (429 with Retry-After) in which no password is
checked, the right one included. ``limits`` also caps sign-in requests per
client address.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from refflow.accounts.users import end_sessions, session_user, verify_login
from refflow.db.models import AuditEntry, Practice, utcnow
from refflow.web import signin_throttle
from refflow.web.limits import client_address
from refflow.web.signin_throttle import SigninThrottle, wait_text

bp = Blueprint("auth", __name__)

log = logging.getLogger("refflow.signin")


@dataclass(frozen=True)
class WebUser:
    id: str
    email: str
    role: str  # staff | admin | practice
    practice_id: str | None
    practice_name: str | None

    @property
    def actor(self) -> str:
        return f"user:{self.id}"

    @property
    def is_staff(self) -> bool:
        return self.role in {"staff", "admin"}

    @property
    def is_admin(self) -> bool:
        """Manages users, practices, API keys, webhooks and settings; staff work the queue."""
        return self.role == "admin"


def _throttle() -> SigninThrottle:
    return signin_throttle.for_app(current_app)


def _db():
    return current_app.extensions["refflow.db"]


def current_user() -> WebUser | None:
    """The signed-in user of this request, or None."""
    if "web_user" in g:
        return g.web_user
    user = None
    user_id = session.get("user_id")
    if user_id:
        with _db().session() as s:
            row = session_user(s, session)
            if row is not None:
                practice_name = None
                if row.practice_id:
                    practice = s.get(Practice, row.practice_id)
                    practice_name = practice.name if practice else None
                user = WebUser(row.id, row.email, row.role, row.practice_id, practice_name)
        if user is None:
            session.clear()
    g.web_user = user
    return user


def _to_login():
    if request.headers.get("X-Refflow-Poll") == "1":
        abort(401)
    if g.get("session_expired"):
        flash("You were signed out because the session was idle. Please sign in again.",
              "info")
    nxt = request.full_path if request.method == "GET" else None
    return redirect(url_for("auth.login", next=nxt.rstrip("?") if nxt else None))


def staff_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        user = current_user()
        if user is None:
            return _to_login()
        if not user.is_staff:
            abort(404)  # a practice user never learns what staff pages exist
        return view(user, *args, **kwargs)

    return wrapped


def admin_required(view):
    """Admin pages: staff get 403 (they know the page exists), practice users 404."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        user = current_user()
        if user is None:
            return _to_login()
        if not user.is_staff:
            abort(404)
        if not user.is_admin:
            abort(403, "Only an administrator can open this page.")
        return view(user, *args, **kwargs)

    return wrapped


def practice_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        user = current_user()
        if user is None:
            return _to_login()
        if user.role != "practice" or not user.practice_id:
            abort(404)
        return view(user, *args, **kwargs)

    return wrapped


def home_for(user: WebUser) -> str:
    return url_for("portal.index") if user.role == "practice" else url_for("staff.dashboard")


def safe_next(value: str | None) -> str | None:
    """Only a path on this site (never //host or a scheme). Control characters
    and whitespace are refused outright: browsers drop tabs and newlines from
    a URL, so "/<tab>/evil.example" would become "//evil.example"."""
    if (not value or not value.startswith("/") or value.startswith("//") or "\\" in value
            or any(ch.isspace() or not ch.isprintable() for ch in value)):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


@bp.route("/login", methods=["GET", "POST"], endpoint="login")
def login():
    user = current_user()
    if request.method == "GET":
        if user is not None:
            return redirect(home_for(user))
        return render_template("login.html", email="", next=safe_next(request.args.get("next")))

    email = (request.form.get("email") or "").strip()[:254]
    password = request.form.get("password") or ""
    nxt = safe_next(request.form.get("next"))
    throttle = _throttle()
    error = None
    if not email or not password:
        error = "Enter your email and your password."
    else:
        account, address = throttle.account(email), client_address()
        device = throttle.device_for(account, request.cookies.get(throttle.device_cookie))
        wait = throttle.attempt(account, address, device)
        if wait is not None:
            return _slow_down(email, nxt, account, address, wait)
        with _db().session() as s:
            row = verify_login(s, email, password)
            if row is None:
                s.add(AuditEntry(actor="anonymous", action="login.failed", ip=request.remote_addr,
                                 detail=f"account {account[:12]}"))
            else:
                row.last_login_at = utcnow()
                s.add(AuditEntry(actor=f"user:{row.id}", action="login", ip=request.remote_addr))
                user_id, role, epoch = row.id, row.role, row.session_epoch
        if row is None:
            throttle.failed(address)
            error = "The email or password is not right."
    if error:
        return render_template("login.html", email=email, next=nxt, error=error), 401

    throttle.succeeded(account, device)
    response = begin_session(user_id, role, epoch, nxt)
    # this browser now has a sign-in counter of its own for this account
    response.set_cookie(throttle.device_cookie, throttle.new_device_cookie(account, device),
                        max_age=signin_throttle.DEVICE_MAX_AGE, path="/", httponly=True,
                        samesite="Lax", secure=throttle.device_cookie.startswith("__Host-")
                        or request.is_secure)
    return response


def begin_session(user_id: str, role: str, epoch: int, nxt: str | None):
    """Sign this browser in as the user (a password or single sign-on checked
    who it is): a redirect to ``nxt`` or the user's home page."""
    session.clear()  # a new session: nothing (and no CSRF token) carries over
    session.permanent = True
    now = int(time.time())
    session.update({"user_id": user_id, "epoch": epoch, "seen": now, "since": now})
    g.pop("web_user", None)
    default = url_for("portal.index") if role == "practice" else url_for("staff.dashboard")
    return redirect(nxt or default)


def _slow_down(email: str, nxt: str | None, account: str, address: str, wait: float):
    """429: inside the growing delay no password is checked, the right one neither."""
    seconds = max(1, math.ceil(wait))
    log.warning("sign-in delayed: account %s, %s, %d s to wait", account[:12], address,
                seconds)
    with _db().session() as s:
        s.add(AuditEntry(actor="anonymous", action="login.delayed", ip=request.remote_addr,
                         detail=f"account {account[:12]}; retry in {seconds} s"))
    error = (f"Too many failed sign-ins for this account or from this network. "
             f"Try again in {wait_text(seconds)}, or ask an administrator to unlock "
             f"your account.")
    page = render_template("login.html", email=email, next=nxt, error=error)
    return page, 429, {"Retry-After": str(seconds)}


@bp.post("/logout")
def logout():
    user = current_user()
    if user is not None:
        with _db().session() as s:
            end_sessions(s, user.id)  # copies of this cookie stop working too
            s.add(AuditEntry(actor=user.actor, action="logout", ip=request.remote_addr))
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
