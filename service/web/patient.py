"""The patient's page on their phone: ``/p/<token>``.

Plain HTML and one stylesheet (no script). The link alone shows nothing: the
patient types their date of birth; tries are slowed per link and per client
address by the sign-in throttle (``signin_throttle``: a few free tries, then a
growing wait). The right date gives a short-lived signed cookie for that link
(``REFFLOW_PATIENT_SESSION_MINUTES``); then the page shows this week's
exercises and a form to log a session with an optional pain (0-10) and
difficulty rating. An expired or revoked link says so, with the clinic's
phone. Every access is on the audit trail (link and referral ids only); the
token is never logged (the server keeps no access log and the metrics label
is the route rule).
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select

from refflow.db.models import AuditEntry, Plan
from refflow.documents import formatting as fmt
from refflow.intake.validation import clinic_today
from refflow.referrals import patient_page
from refflow.web import downloads, drawing_images
from refflow.web.auth import _throttle
from refflow.web.limits import client_address
from refflow.web.signin_throttle import wait_text

bp = Blueprint("patient", __name__, url_prefix="/p")

COOKIE = "refflow_patient"


def _settings():
    return current_app.extensions["refflow.settings"]


def _db():
    return current_app.extensions["refflow.db"]


def _cookie_name() -> str:
    return COOKIE if _settings().embedded else "__Host-" + COOKIE


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="refflow-patient-page")


def _audit(s, link, action: str) -> None:
    s.add(AuditEntry(actor=f"patient-link:{link.id}" if link else "patient-link:unknown",
                     action=action, referral_id=link.referral_id if link else None,
                     ip=request.remote_addr))


def _signed_in(link) -> bool:
    value = request.cookies.get(_cookie_name())
    if not value:
        return False
    try:
        data = _signer().loads(value, max_age=_settings().patient_session_minutes * 60)
    except BadSignature:
        return False
    return isinstance(data, dict) and data.get("l") == link.id


def _page(template: str, status: int = 200, **ctx) -> Response:
    s = _settings()
    body = render_template(template, clinic_name=s.clinic_name, clinic_phone=s.clinic_phone,
                           **ctx)
    return downloads.private(make_response(body, status))


def _closed(s, found) -> Response:
    _audit(s, found.link, f"patient_page.{found.state}")
    return _page("patient/closed.html", 404 if found.state == "unknown" else 410,
                 state=found.state)


@bp.get("/<token>")
def page(token: str):
    with _db().session() as s:
        found = patient_page.find(s, token)
        if found.state != "open":
            return _closed(s, found)
        link = found.link
        if not _signed_in(link):
            _audit(s, link, "patient_page.ask_birth_date")
            return _page("patient/birth_date.html", token=token)
        plan = s.scalar(select(Plan.body).where(Plan.referral_id == link.referral_id)) or {}
        today = clinic_today(_settings().clinic_timezone)
        start = patient_page.program_start(s, link.referral_id) or link.created_at
        since = start.astimezone(_zone()).date()
        week, exercises = patient_page.this_week(plan, since, today)
        logged = patient_page.sessions(s, link.referral_id, limit=20)
        _audit(s, link, "patient_page.view")
        cards = [_card(ex) for ex in exercises]
        return _page("patient/plan.html", token=token, week=week, exercises=cards,
                     logged=logged, today=today.isoformat(),
                     difficulties=patient_page.DIFFICULTIES)


def _zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo(_settings().clinic_timezone)


def _card(ex: dict) -> dict:
    return {"name": ex.get("name") or ex.get("id") or "Exercise",
            "picture": drawing_images.picture(ex.get("drawing")),
            "dose": fmt.sentence(f"{fmt.dose_text(ex.get('dose'))}, "
                                 f"{fmt.days_text(ex.get('days_per_week'))}"),
            "steps": [fmt.sentence(step) for step in ex.get("instructions") or []],
            "safety": fmt.sentence(ex["safety_cue"]) if ex.get("safety_cue") else ""}


@bp.post("/<token>")
def confirm(token: str):
    """The date of birth: right → the page (a signed cookie for this link)."""
    throttle = _throttle()
    address = client_address()
    with _db().session() as s:
        found = patient_page.find(s, token)
        if found.state != "open":
            return _closed(s, found)
        link = found.link
        account = throttle.account(f"patient-link:{link.id}")
        wait = throttle.attempt(account, address)
        if wait is not None:
            _audit(s, link, "patient_page.throttled")
            response = _page("patient/birth_date.html", 429, token=token,
                             error=f"Too many tries. Please wait {wait_text(wait)} and try "
                                   "again, or call us.")
            response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
            return response
        if not patient_page.birth_date_matches(s, link, request.form.get("birth_date", "")):
            throttle.failed(address)
            _audit(s, link, "patient_page.birth_date_refused")
            return _page("patient/birth_date.html", 403, token=token,
                         error="Sorry, that date of birth does not match our records. "
                               "Please check it and try again.")
        throttle.succeeded(account)
        _audit(s, link, "patient_page.birth_date_accepted")
        link_id = link.id
    response = redirect(url_for("patient.page", token=token), 303)
    response.set_cookie(_cookie_name(), _signer().dumps({"l": link_id}),
                        max_age=_settings().patient_session_minutes * 60, httponly=True,
                        samesite="Lax", secure=not _settings().embedded or request.is_secure)
    return response


@bp.post("/<token>/sessions")
def log(token: str):
    """Log a session (the page's form); back to the page."""
    with _db().session() as s:
        found = patient_page.find(s, token)
        if found.state != "open":
            return _closed(s, found)
        link = found.link
        if not _signed_in(link):
            return redirect(url_for("patient.page", token=token), 303)
        today = clinic_today(_settings().clinic_timezone)
        done = patient_page.parse_date(request.form.get("done_on", "")) or today
        try:
            patient_page.log_session(s, link, done_on=done, today=today,
                                     pain=request.form.get("pain"),
                                     difficulty=request.form.get("difficulty"),
                                     note=request.form.get("note"))
        except patient_page.PatientPageError as exc:
            s.rollback()
            flash(str(exc), "error")
        else:
            _audit(s, link, "patient_session.log")
            flash("Well done! Your session is saved.", "success")
    return redirect(url_for("patient.page", token=token) + "#log", 303)
