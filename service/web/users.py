"""The Users page (admins only): everyone who signs in, whether they are
active, slowed by failed sign-ins (locked) and when they last signed in; and
the admin's actions on them: disable (their sessions end at once), enable,
unlock, reset the password (the new one is shown once, on the answer page)
and switch between staff and admin.

The actions are ``refflow.accounts.users``'s, the same ``refflow user ...``
runs; each is audited with the admin as actor.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from refflow.accounts import users
from refflow.accounts.practices import AccountError
from refflow.db.models import User
from refflow.web import signin_throttle
from refflow.web.auth import WebUser, admin_required
from refflow.web.signin_throttle import ThrottleUnavailable, wait_text

bp = Blueprint("users", __name__)

# The roles an admin switches between on the page (practice users are made,
# and moved, with ``refflow user``: they need a practice).
CLINIC_ROLES = ("staff", "admin")


def _db():
    return current_app.extensions["refflow.db"]


def _page(user: WebUser, *, new_password: dict | None = None):
    throttle = signin_throttle.for_app(current_app)
    with _db().session() as s:
        people = users.list_users(s)
        waits = throttle.waits([p.email for p in people])
        rows = [{"id": p.id, "email": p.email, "role": p.role,
                 "practice": p.practice.name if p.practice else None, "active": p.active,
                 "locked": wait_text(waits[p.email]) if waits[p.email] > 0 else None,
                 "last_login_at": p.last_login_at, "me": p.id == user.id}
                for p in people]
    return render_template("staff/users.html", user=user, rows=rows, roles=CLINIC_ROLES,
                           new_password=new_password)


@bp.get("/users")
@admin_required
def index(user: WebUser):
    return _page(user)


def _act(user_id: str, change, done: str):
    """Run ``change(session, row)`` on the user ``user_id``; back to the page
    with ``done`` (formatted with the user's email) or the reason it was refused."""
    try:
        with _db().session() as s:
            row = s.get(User, user_id)
            if row is None:
                flash("That user does not exist any more.", "error")
                return redirect(url_for("users.index"))
            email = row.email
            change(s, row)
    except (AccountError, ThrottleUnavailable) as exc:
        flash(f"{email}: {str(exc)[:1].upper()}{str(exc)[1:]}.", "error")
    else:
        flash(done.format(email=email), "success")
    return redirect(url_for("users.index"))


@bp.post("/users/<user_id>/disable")
@admin_required
def disable(user: WebUser, user_id: str):
    return _act(user_id, lambda s, row: users.disable_user(
        s, row, actor=user.actor, ip=request.remote_addr),
        "{email} is disabled and was signed out everywhere.")


@bp.post("/users/<user_id>/enable")
@admin_required
def enable(user: WebUser, user_id: str):
    return _act(user_id, lambda s, row: users.enable_user(
        s, row, actor=user.actor, ip=request.remote_addr),
        "{email} can sign in again.")


@bp.post("/users/<user_id>/unlock")
@admin_required
def unlock(user: WebUser, user_id: str):
    throttle = signin_throttle.for_app(current_app)
    return _act(user_id, lambda s, row: users.unlock_user(
        s, row, throttle, actor=user.actor, ip=request.remote_addr),
        "{email} is unlocked: their failed sign-ins are forgotten.")


@bp.post("/users/<user_id>/role")
@admin_required
def role(user: WebUser, user_id: str):
    wanted = request.form.get("role", "")
    if wanted not in CLINIC_ROLES:
        flash("Choose staff or admin.", "error")
        return redirect(url_for("users.index"))
    return _act(user_id, lambda s, row: _clinic_role(s, row, wanted, user),
                f"{{email}} is now {wanted}.")


def _clinic_role(s, row: User, wanted: str, user: WebUser) -> None:
    if row.role not in CLINIC_ROLES:
        raise AccountError("a practice user's role is changed with refflow user role")
    users.set_role(s, row, wanted, actor=user.actor, ip=request.remote_addr)


@bp.post("/users/<user_id>/reset-password")
@admin_required
def reset_password(user: WebUser, user_id: str):
    """The new password is in this answer only (never in a flash message: the
    session cookie is signed, not encrypted)."""
    with _db().session() as s:
        row = s.get(User, user_id)
        if row is None:
            flash("That user does not exist any more.", "error")
            return redirect(url_for("users.index"))
        password = users.reset_password(s, row, actor=user.actor, ip=request.remote_addr)
        email = row.email
    return _page(user, new_password={"email": email, "password": password,
                                     "me": user_id == user.id})
