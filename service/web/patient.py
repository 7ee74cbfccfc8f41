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

Every screen is in the language of the plan's handout
(``documents.exercise_text.handout_language``), through the same gettext
catalogue (``documents.translations``: ``with using(language)`` around the
view, ``_()`` in the templates) and the same exercise cards
(``exercise_text.exercise_rows`` over the plan's translated texts), so the page
and the printed handout say the same thing; dates and numbers in that
language's locale (Babel). An unreviewed translation says so, as the
handout does. A link that is not found is answered in the browser's
preferred language among those shipped.
"""

from __future__ import annotations

import datetime as dt
import math

from babel.dates import format_skeleton, format_timedelta
from babel.numbers import format_decimal
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
from refflow.documents import exercise_text
from refflow.documents import translations as tr
from refflow.documents.translations import N_, _
from refflow.intake.validation import clinic_today
from refflow.referrals import patient_page
from refflow.web import downloads, drawing_images
from refflow.web.auth import _throttle
from refflow.web.limits import client_address

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


DIFFICULTY_WORDS = {"easy": N_("Easy"), "ok": N_("OK"), "hard": N_("Hard")}
DIFFICULTY_LOGGED = {"easy": N_("easy"), "ok": N_("OK"), "hard": N_("hard")}


def _plan(s, referral_id: str) -> dict:
    return s.scalar(select(Plan.body).where(Plan.referral_id == referral_id)) or {}


def _language(plan: dict | None) -> str:
    """The handout's language for a known link; for a link not found, the
    browser's preferred one among those shipped."""
    if plan is not None:
        return exercise_text.handout_language(plan)
    return request.accept_languages.best_match(tr.languages()) or tr.SOURCE_LANGUAGE


def _locale() -> str:
    return tr.locale_for(_settings().clinic_locale)


def _page(template: str, plan: dict | None, status: int = 200, **ctx) -> Response:
    """A page in the current language (inside ``tr.using``)."""
    s = _settings()
    body = render_template(
        template, clinic_name=s.clinic_name, clinic_phone=s.clinic_phone,
        lang=_locale().replace("_", "-"), _=_, ngettext=tr.ngettext,
        unreviewed=plan is not None and exercise_text.unreviewed_translation(plan),
        unreviewed_notice=_(exercise_text.UNREVIEWED_NOTICE),
        unreviewed_english=exercise_text.UNREVIEWED_ENGLISH, **ctx)
    return downloads.private(make_response(body, status))


def _closed(s, found) -> Response:
    _audit(s, found.link, f"patient_page.{found.state}")
    plan = _plan(s, found.link.referral_id) if found.link else None
    with tr.using(_language(plan)):
        return _page("patient/closed.html", plan, 404 if found.state == "unknown" else 410,
                     state=found.state)


@bp.get("/<token>")
def page(token: str):
    with _db().session() as s:
        found = patient_page.find(s, token)
        if found.state != "open":
            return _closed(s, found)
        link = found.link
        plan = _plan(s, link.referral_id)
        with tr.using(_language(plan)):
            if not _signed_in(link):
                _audit(s, link, "patient_page.ask_birth_date")
                return _page("patient/birth_date.html", plan, token=token)
            today = clinic_today(_settings().clinic_timezone)
            start = patient_page.program_start(s, link.referral_id) or link.created_at
            since = start.astimezone(_zone()).date()
            week, exercises = patient_page.this_week(plan, since, today)
            logged = [_logged(row) for row in patient_page.sessions(s, link.referral_id, limit=20)]
            _audit(s, link, "patient_page.view")
            return _page("patient/plan.html", plan, token=token, week=_number(week),
                         exercises=_cards(plan, exercises), logged=logged,
                         today=today.isoformat(),
                         difficulties=[(d, _(DIFFICULTY_WORDS[d]))
                                       for d in patient_page.DIFFICULTIES])


def _zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo(_settings().clinic_timezone)


def _number(n: int) -> str:
    return format_decimal(n, locale=_locale())


def _logged(row) -> dict:
    """A logged session in words: "Monday, December 7 · pain 4/10 · hard"."""
    parts = [_("pain {n}/10").format(n=_number(row.pain))] if row.pain is not None else []
    if row.difficulty in DIFFICULTY_LOGGED:
        parts.append(_(DIFFICULTY_LOGGED[row.difficulty]))
    return {"day": format_skeleton("MMMMEEEEd", row.done_on, locale=_locale()),
            "details": parts}


def _cards(plan: dict, exercises: list[dict]) -> list[dict]:
    """The exercises as the handout's cards, in the current language: the
    same rows (dose and days, what you need, steps, safety cue, easier and
    harder) from ``exercise_text.exercise_rows``."""
    starts = exercise_text.start_weeks(plan)
    days = exercise_text.exercise_days(plan.get("weekly_schedule") or [])
    cards = []
    for ex in exercise_text.in_language(exercises):
        rows = exercise_text.exercise_rows(ex, starts.get(ex.get("id")), days.get(ex.get("id")))
        steps = [text for label, text in rows if label[:-1].isdigit()]
        labelled = [{"label": label, "text": text, "safety": label == _("Stay safe:")}
                    for label, text in rows if not label[:-1].isdigit()]
        first_after = next((i for i, row in enumerate(rows) if row[0][:-1].isdigit()),
                           len(rows))
        cards.append({"name": ex.get("name") or ex.get("id") or _("Exercise"),
                      "picture": drawing_images.picture(ex.get("drawing")),
                      "before": labelled[:first_after], "steps": steps,
                      "after": labelled[first_after:]})
    return cards


def _wait_words(seconds: float) -> str:
    """How long to wait, rounded up as a person reads it ("3 seconds", "2 minutes")."""
    whole = max(1, math.ceil(seconds))
    if whole >= 60:
        whole = math.ceil(whole / 60) * 60
    return format_timedelta(dt.timedelta(seconds=whole), locale=_locale(), threshold=2)


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
        plan = _plan(s, link.referral_id)
        with tr.using(_language(plan)):
            account = throttle.account(f"patient-link:{link.id}")
            wait = throttle.attempt(account, address)
            if wait is not None:
                _audit(s, link, "patient_page.throttled")
                response = _page("patient/birth_date.html", plan, 429, token=token,
                                 error=_("Too many tries. Please wait {wait} and try again, "
                                         "or call us.").format(wait=_wait_words(wait)))
                response.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
                return response
            if not patient_page.birth_date_matches(s, link, request.form.get("birth_date", "")):
                throttle.failed(address)
                _audit(s, link, "patient_page.birth_date_refused")
                return _page("patient/birth_date.html", plan, 403, token=token,
                             error=_("Sorry, that date of birth does not match our records. "
                                     "Please check it and try again."))
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
        with tr.using(_language(_plan(s, link.referral_id))):
            try:
                patient_page.log_session(s, link, done_on=done, today=today,
                                         pain=request.form.get("pain"),
                                         difficulty=request.form.get("difficulty"),
                                         note=request.form.get("note"))
            except patient_page.PatientPageError as exc:
                s.rollback()
                flash(_(exc.message), "error")
            else:
                _audit(s, link, "patient_session.log")
                flash(_("Well done! Your session is saved."), "success")
    return redirect(url_for("patient.page", token=token) + "#log", 303)
