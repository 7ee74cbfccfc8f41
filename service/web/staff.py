"""Staff pages: the queue dashboard, a referral with everything about it, and the
staff actions (approve / reject, retry or correct a delivery, cancel), the plan
editor of a plan held for review (each change a new version through
``pipeline.plan_revisions``), its versions and their differences, and the draft
documents rendered on demand from the current version.

Actions go through the pipeline's steps (they write the timeline and the audit
trail); every view of a referral is audited as ``referral.view``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select

from refflow.db.models import (
    AuditEntry,
    Delivery,
    DeliveryAttempt,
    Document,
    Plan,
    Referral,
    ReferralEvent,
    User,
    utcnow,
)
from refflow.documents.formatting import clinic_region, phone_text
from refflow.intake.validation import clinic_today
from refflow.pipeline import plan_revisions, staff_actions
from refflow.pipeline.context import Pipeline, StepError
from refflow.pipeline.flow import referral_input
from refflow.pipeline.overview import queue_overview
from refflow.planning.revisions import (
    InvalidRevision,
    SafetyRuleBroken,
    VersionConflict,
    current_version,
    describe,
    diff_plans,
)
from refflow.referrals import patient_page, queries, states
from refflow.web import downloads, drawing_images, queue
from refflow.web.auth import WebUser, current_user, home_for, staff_required

bp = Blueprint("staff", __name__)

FILTERS_KEY = "queue_filters"
FEEDBACK_KEY = "feedback_place"  # where on the referral page the next message goes
NOTE_MAX = 1000


def _pipeline() -> Pipeline:
    return current_app.extensions["refflow.pipeline"]


def _db():
    return current_app.extensions["refflow.db"]


def _settings():
    return current_app.extensions["refflow.settings"]


def _audit(session, user: WebUser, action: str, referral_id: str | None = None,
           detail: str | None = None) -> None:
    session.add(AuditEntry(actor=user.actor, action=action, referral_id=referral_id,
                           ip=request.remote_addr, detail=detail))


# -- the queue --------------------------------------------------------------------

def _filters() -> queue.Filters:
    return queue.Filters.from_session(session.get(FILTERS_KEY), current_app.secret_key)


def _queue_context(filters: queue.Filters, *, whole_page: bool) -> dict:
    """What the queue's part of the dashboard shows (``staff/_queue.html``, the
    part refreshed every 5 seconds); ``whole_page`` adds what only the whole
    dashboard shows around it (the filter form's practices, the exercise alerts)."""
    overview = queue_overview(_db(), current_app.extensions.get("refflow.broker_stats"))
    with _db().session() as s:
        rows, total = queue.search(s, filters, _settings().clinic_timezone)
        review = queue.review_queue(s)
        due_days = _settings().plan_due_days
        overdue, overdue_total = queue.plan_overdue(s, due_days, utcnow())
        ctx = {
            "filters": filters,
            "overview": overview,
            "rows": _named(rows),
            "total": total,
            "review": _named(review),
            "overdue": _named(overdue),
            "overdue_total": overdue_total,
            "plan_due_days": due_days,
            "failure_names": queue.patient_names(
                s, {d["referral_id"] for d in overview["failures"]}),
            "states": states.STATES,
            "limit": queue.LIMIT,
            "count_cap": queue.COUNT_CAP,
            "now": utcnow(),
        }
        if whole_page:
            exercise_alerts = patient_page.alerts(s, clinic_today(_settings().clinic_timezone))
            names = queue.patient_names(s, [a["referral_id"] for a in exercise_alerts])
            ctx["exercise_alerts"] = [dict(a, name=names[a["referral_id"]])
                                      for a in exercise_alerts if a["referral_id"] in names]
            ctx["practices"] = queue.practices(s)
    return ctx


def _named(rows) -> list:
    """A list's rows (``queue.search`` and the others), each with its patient's name."""
    return [(r, queue.full_name(r.family_name, r.given_name)) for r in rows]


@bp.get("/")
def dashboard():
    """The site's front door: staff see the queue, a referring office goes to its
    portal, and signed-out visitors are sent to sign in."""
    user = current_user()
    if user is not None and not user.is_staff:
        return redirect(home_for(user))
    return _dashboard()


@staff_required
def _dashboard(user: WebUser):
    with _db().session() as s:
        _audit(s, user, "queue.read")
    return render_template("staff/dashboard.html", user=user,
                           **_queue_context(_filters(), whole_page=True))


# Refreshes of the same view within this long share one reading (web.shared_reading).
QUEUE_SHARED_SECONDS = 1.0


@bp.get("/queue/fragment")
@staff_required
def queue_fragment(user: WebUser):
    """The queue's part of the dashboard, every 5 seconds from each open dashboard."""
    filters = _filters()
    with _db().session() as s:
        _audit(s, user, "queue.read")
    # the same view: the same filters, and links under the same path prefix
    html = current_app.extensions["refflow.queue_readings"].get(
        (filters, request.script_root),
        lambda: render_template("staff/_queue.html", **_queue_context(filters, whole_page=False)))
    return downloads.private(Response(html))


@bp.post("/queue/filters")
@staff_required
def set_filters(user: WebUser):
    if request.form.get("clear"):
        session.pop(FILTERS_KEY, None)
    else:
        session[FILTERS_KEY] = queue.Filters.from_form(request.form).to_session(
            current_app.secret_key)
    return redirect(url_for("staff.dashboard"))


# -- one referral -----------------------------------------------------------------

def _load(s, referral_id: str) -> Referral:
    referral = s.get(Referral, referral_id)
    if referral is None:
        abort(404)
    return referral


def _actor_names(s, actors) -> dict[str, str]:
    ids = {a.split(":", 1)[1] for a in actors if a and a.startswith("user:")}
    names = {}
    if ids:
        for uid, email in s.execute(select(User.id, User.email).where(User.id.in_(ids))).all():
            names[f"user:{uid}"] = email
    return names


def referral_context(s, referral: Referral) -> dict:
    events = s.scalars(select(ReferralEvent).where(ReferralEvent.referral_id == referral.id)
                       .order_by(ReferralEvent.id)).all()
    deliveries = s.scalars(select(Delivery).where(Delivery.referral_id == referral.id)
                           .order_by(Delivery.created_at, Delivery.id)).all()
    attempts: dict[str, list] = {}
    if deliveries:
        for a in s.scalars(select(DeliveryAttempt).where(
                DeliveryAttempt.delivery_id.in_([d.id for d in deliveries]))
                .order_by(DeliveryAttempt.id)):
            attempts.setdefault(a.delivery_id, []).append(a)
    plan = s.scalar(select(Plan).where(Plan.referral_id == referral.id))
    docs = s.execute(select(Document.name, Document.size, Document.pages)
                     .where(Document.referral_id == referral.id)).all()
    docs = sorted(docs, key=lambda d: downloads.NAMES.index(d.name)
                  if d.name in downloads.NAMES else 99)
    actors = _actor_names(s, [e.actor for e in events]
                          + ([plan.approved_by] if plan and plan.approved_by else []))
    return {
        "referral": referral,
        "payload": referral.payload or {},
        "practice": referral.practice,
        "events": events,
        "deliveries": deliveries,
        "attempts": attempts,
        "plan": plan.body if plan else None,
        "plan_row": plan,
        "documents": docs,
        "fax_pages": next((d.pages or 0 for d in docs if d.name == "fax.tiff"), 0),
        "actors": actors,
        "patient_name": queue.patient_name(referral),
        "can_cancel": states.can_transition(referral.status, states.CANCELLED),
        "plan_sent": _plan_sent(deliveries, docs),
        "decision": queries.decision(referral, plan.body if plan else None, events, deliveries),
    }


def _plan_sent(deliveries, docs) -> dict | None:
    """Proof the plan reached the referrer (when, channel, confirmation, pages)."""
    import datetime as dt

    proof = queries.plan_sent_to_referrer(deliveries, {d.name: d.pages for d in docs})
    return dict(proof, at=dt.datetime.fromisoformat(proof["at"])) if proof else None


@bp.get("/referrals/<referral_id>")
@staff_required
def referral(user: WebUser, referral_id: str):
    return _referral_page(user, referral_id)


def _referral_page(user: WebUser, referral_id: str, *, edit: dict | None = None,
                   status: int = 200, new_patient_url: str | None = None,
                   feedback: dict | None = None, typed: dict | None = None) -> Response:
    """The referral page; ``edit`` is a refused change (its problem and what was typed).

    ``feedback`` is what became of an action, ``{"place", "messages"}``, shown in
    the part of the page the action was in (``place``: ``actions``,
    ``delivery-<id>``, ``plan``, ``exercise-log``, else the top), as the element
    ``#feedback`` the page opens on; without it, the messages flashed before a
    redirect go where ``_done`` said. ``typed`` keeps what was typed in a refused
    action's form, by the input's id."""
    place = session.pop(FEEDBACK_KEY, None)
    if feedback is None:
        messages = get_flashed_messages(with_categories=True)
        feedback = {"place": place or "top", "messages": messages} if messages else None
    with _db().session() as s:
        row = _load(s, referral_id)
        _audit(s, user, "referral.view", row.id)
        ctx = referral_context(s, row)
        ctx.update(_exercise_log(s, row.id), new_patient_url=new_patient_url,
                   feedback=feedback, typed=typed or {})
    ctx.update(_editor_context(ctx, edit))
    body = render_template("staff/referral.html", user=user, **ctx)
    return downloads.private(Response(body, status=status))


@bp.get("/referrals/<referral_id>/documents/<name>")
@staff_required
def document(user: WebUser, referral_id: str, name: str):
    with _db().session() as s:
        row = _load(s, referral_id)
        doc = downloads.load(s, row.id, name)
        _audit(s, user, "document.read", row.id, detail=name)
        return downloads.file_response(doc, download=request.args.get("download") == "1")


@bp.get("/referrals/<referral_id>/fax/<int:page>.png")
@staff_required
def fax_page(user: WebUser, referral_id: str, page: int):
    with _db().session() as s:
        row = _load(s, referral_id)
        doc = downloads.load(s, row.id, "fax.tiff")
        _audit(s, user, "document.read", row.id, detail=f"fax.tiff page {page}")
        content = downloads.content(doc)
    response = Response(downloads.fax_page_png(content, page), mimetype="image/png")
    return downloads.private(response)


def _note(field: str = "note") -> str | None:
    note = (request.form.get(field) or "").strip()
    if len(note) > NOTE_MAX:
        note = note[:NOTE_MAX]
    return note or None


def _done(referral_id: str, text: str, place: str = "actions", category: str = "success"):
    """After an action: back to the referral page, opened on the message, which
    is shown at ``place`` (where the action's form was)."""
    flash(text, category)
    session[FEEDBACK_KEY] = place
    return redirect(url_for("staff.referral", referral_id=referral_id) + "#feedback")


def _refused(user: WebUser, referral_id: str, text: str, place: str, typed: dict) -> Response:
    """A refused action: the referral page again (422) with the reason at ``place``
    and what was typed still in the form (``typed``, by input id)."""
    return _referral_page(user, referral_id, status=422, typed=typed,
                          feedback={"place": place, "messages": [("error", text)]})


@bp.post("/referrals/<referral_id>/approve")
@staff_required
def approve(user: WebUser, referral_id: str):
    with _db().session() as s:
        _load(s, referral_id)
    note = _note()
    try:
        staff_actions.approve(_pipeline(), referral_id, actor=user.actor, note=note)
    except StepError as exc:
        return _refused(user, referral_id, f"Not approved: {exc}.", "actions",
                        {"approve-note": note or ""})
    return _done(referral_id, "Plan approved. The documents will now be prepared and sent.")


@bp.post("/referrals/<referral_id>/reject")
@staff_required
def reject(user: WebUser, referral_id: str):
    note = _note()
    with _db().session() as s:
        _load(s, referral_id)
    if not note:
        return _refused(user, referral_id,
                        "Not rejected: say why the plan is rejected (the note is required).",
                        "actions", {"reject-note": ""})
    try:
        staff_actions.reject(_pipeline(), referral_id, actor=user.actor, note=note)
    except StepError as exc:
        return _refused(user, referral_id, f"Not rejected: {exc}.", "actions",
                        {"reject-note": note})
    return _done(referral_id, "Plan rejected. The patient gets nothing; the referring office "
                              "is sent a letter with your reason.")


@bp.post("/referrals/<referral_id>/cancel")
@staff_required
def cancel(user: WebUser, referral_id: str):
    reason = _note("reason")
    with _db().session() as s:
        row = _load(s, referral_id)
        try:
            staff_actions.cancel(s, row, actor=user.actor,
                                 reason="cancelled by staff" + (f": {reason}" if reason else ""))
        except states.IllegalTransition as exc:
            s.rollback()
            return _refused(user, referral_id, f"Not cancelled: a {exc.current} referral "
                            "cannot be cancelled.", "actions", {"cancel-reason": reason or ""})
        _audit(s, user, "referral.cancel", row.id)
    return _done(referral_id, "Referral cancelled.")


@bp.post("/deliveries/<delivery_id>/retry")
@staff_required
def retry(user: WebUser, delivery_id: str):
    with _db().session() as s:
        delivery = s.get(Delivery, delivery_id)
        if delivery is None:
            abort(404)
        referral_id, old_target = delivery.referral_id, delivery.target
    typed = (request.form.get("target") or "").strip()[:254]
    region = clinic_region(_settings().clinic_locale)
    # the form shows the number as people write it: unchanged is not a correction
    target = typed if typed and (phone_text(typed, region)
                                 != phone_text(old_target, region)) else None
    place = f"delivery-{delivery_id}"
    try:
        staff_actions.retry_delivery(_pipeline(), delivery_id, actor=user.actor, target=target)
    except LookupError:
        abort(404)
    except StepError as exc:
        return _refused(user, referral_id, f"Not sent again: {exc}.", place,
                        {f"target-{delivery_id}": typed})
    return _done(referral_id, "Sending again" + (" to the corrected address." if target else "."),
                 place)


# -- the patient's page: exercise log, link ----------------------------------------

def _exercise_log(s, referral_id: str) -> dict:
    """What the patient logged (sessions per week, pain trend) and their link."""
    log = patient_page.summary(s, referral_id, clinic_today(_settings().clinic_timezone))
    link = patient_page.current_link(s, referral_id)
    state = None
    if link is not None:
        state = ("revoked" if link.revoked_at else
                 "expired" if link.expires_at <= utcnow() else "open")
    return {"exercise_log": log, "pain_chart": _pain_chart(log["pains"]),
            "patient_link": link, "patient_link_state": state}


def _pain_chart(pains: list) -> dict | None:
    """The pain ratings (oldest first, the last 20) as points of a small SVG chart."""
    pains = pains[-20:]
    if not pains:
        return None
    width, height, pad = 320, 120, 16
    step = (width - 2 * pad) / max(1, len(pains) - 1)
    points = [(round(pad + i * step, 1), round(height - pad - p * (height - 2 * pad) / 10, 1),
               day, p) for i, (day, p) in enumerate(pains)]
    return {"width": width, "height": height, "pad": pad, "points": points,
            "line": " ".join(f"{x},{y}" for x, y, _, _ in points)}


@bp.post("/referrals/<referral_id>/patient-link/revoke")
@staff_required
def revoke_patient_link(user: WebUser, referral_id: str):
    with _db().session() as s:
        _load(s, referral_id)
        count = patient_page.revoke(s, referral_id, actor=user.actor)
        _audit(s, user, "patient_link.revoke", referral_id)
    return _done(referral_id, "The patient's link is revoked: it no longer opens their page."
                 if count else "There was no link in use.", "exercise-log")


@bp.post("/referrals/<referral_id>/patient-link/new")
@staff_required
def new_patient_link(user: WebUser, referral_id: str):
    """A new link (the old one stops working; the handout is rendered again
    with its QR code), shown once on the page; a patient the plan was
    emailed to gets it by email, and the page says whether it went."""
    with _db().session() as s:
        _load(s, referral_id)
    try:
        new = staff_actions.new_patient_link(_pipeline(), referral_id, actor=user.actor)
    except StepError as exc:
        return _done(referral_id, f"No new link: {exc}.", "exercise-log", "error")
    with _db().session() as s:
        _audit(s, user, "patient_link.new", referral_id, detail=f"email {new.email}")
    text, category = _new_link_email(new)
    return _referral_page(user, referral_id, new_patient_url=new.url,
                          feedback={"place": "exercise-log", "messages": [(category, text)]})


def _new_link_email(new) -> tuple[str, str]:
    """What became of the email with a new patient link, for staff (message, category)."""
    if new.email == "sent":
        return "New link sent by email to the patient.", "success"
    if new.email == "waiting":
        return "The email to the patient has not gone yet: it will carry the new link.", "success"
    if new.email == "none":
        return ("No email on file for the patient: give them the new handout (Documents) or "
                "this address."), "success"
    return (f"The email with the new link could not be sent ({new.error}): give the patient "
            "the new handout (Documents) or this address."), "error"


# -- the plan editor (a plan held for review) ---------------------------------------

CHANGES = ("remove", "dose", "add", "note", "precaution", "phases")
DOSE_INPUTS = (("sets", "Sets"), ("reps", "Repeats"), ("hold_seconds", "Hold (seconds)"),
               ("minutes", "Minutes"))
SEARCH_LIMIT = 40
TEXT_MAX = 500


def _one_line(value: str | None) -> str:
    """A form's text as one line (line breaks and runs of spaces become one space)."""
    return " ".join((value or "").split())[:TEXT_MAX + 1]


def _catalogue() -> list:
    """The exercise catalogue and the plugins' exercises (as catalogue entries)."""
    from refflow.planning.catalog import load_catalog, plugin_exercises
    from refflow.plugins.manager import exercise_catalog

    items = list(load_catalog().exercises)
    extra, _refused = plugin_exercises(exercise_catalog(_pipeline().pm)[0],
                                       {e.id for e in items})
    return items + extra


def _search(items: list, q: str, category: str, tag: str) -> list:
    words = q.lower().split()
    out = []
    for ex in items:
        text = f"{ex.name} {ex.id.replace('_', ' ')}".lower()
        if words and not all(w in text for w in words):
            continue
        if category and ex.category != category:
            continue
        if tag and tag not in ex.tags:
            continue
        out.append(ex)
    return out


def _kept(edit: dict | None):
    """``kept(form, field, default)``: what was typed in ``form`` when a change was
    refused (so it can be sent again), else ``default``."""
    typed = (edit or {}).get("typed") or {}

    def kept(form: str, field: str, default=""):
        if typed.get("form") == form and field in typed:
            return typed[field]
        return "" if default is None else default
    return kept


def _editor_context(ctx: dict, edit: dict | None) -> dict:
    """The editor, the versions, a comparison, a catalogue search and the drafts."""
    referral, plan = ctx["referral"], ctx["plan"]
    out = {"editing": False, "edit": edit, "kept": _kept(edit), "versions": None,
           "compare": None, "search": None, "drafts": None, "dose_inputs": DOSE_INPUTS}
    if not plan:
        return out
    out["versions"] = [dict(v, at_time=_moment(v.get("at")))
                       for v in plan_revisions.list_versions(_pipeline(), referral.id) or []]
    out["plan_version"] = current_version(plan)
    out["compare"] = _compare(referral.id, out["versions"] or [])
    if referral.status != states.NEEDS_REVIEW:
        return out
    out["editing"] = True
    from refflow.planning.catalog import CATEGORIES

    items = _catalogue()
    args = request.args
    q, category, tag = (_one_line(args.get("q"))[:100], args.get("category") or "",
                        args.get("tag") or "")
    category = category if category in CATEGORIES else ""
    tags = sorted({t for ex in items for t in ex.tags})
    tag = tag if tag in tags else ""
    in_plan = {e.get("id") for e in plan.get("exercises") or []}
    excluded = {x.get("id"): x.get("rule") for x in plan.get("excluded_exercises") or []}
    search = {"q": q, "category": category, "tag": tag, "categories": CATEGORIES, "tags": tags,
              "asked": "search" in args, "results": [], "more": 0,
              "in_plan": in_plan, "excluded": excluded}
    if search["asked"]:
        found = _search(items, q, category, tag)
        search["results"], search["more"] = found[:SEARCH_LIMIT], max(0, len(found) - SEARCH_LIMIT)
        search["pictures"] = {ex.id: drawing_images.picture(ex.drawing)
                              for ex in search["results"]}
    out["search"] = search
    if args.get("drafts") == "1":
        out["drafts"] = _draft_pages(referral.id)
    return out


def _moment(text):
    import datetime as dt

    try:
        moment = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _compare(referral_id: str, versions: list) -> dict | None:
    """The difference between versions ``a`` and ``b`` of the query string."""
    a, b = request.args.get("a", ""), request.args.get("b", "")
    if not (a.isdigit() and b.isdigit() and len(a) < 6 and len(b) < 6):
        return None
    a, b = int(a), int(b)
    known = {v["version"] for v in versions}
    if a not in known or b not in known:
        return {"a": a, "b": b, "error": "There is no such version to compare."}
    pa = plan_revisions.get_version(_pipeline(), referral_id, a)
    pb = plan_revisions.get_version(_pipeline(), referral_id, b)
    if pa is None or pb is None:
        return {"a": a, "b": b, "error": "That version is not stored."}
    diff = diff_plans(pa, pb)
    return {"a": a, "b": b, "diff": diff, "lines": describe(diff), "error": None}


def _number(form, field: str, label: str, problems: dict, *, low: int, high: int) -> int | None:
    text = (form.get(field) or "").strip()
    if not text:
        return None
    if not text.isdigit() or not low <= int(text) <= high:
        problems[field] = f"a whole number from {low} to {high}"
        return None
    return int(text)


def _proposed(change: str, form, plan: dict) -> dict:
    """The change the form asks for, as ``revise_plan``'s ``proposed``."""
    ids = [e.get("id") for e in plan.get("exercises") or []]
    ex_id = (form.get("exercise_id") or "").strip()[:80]
    if change == "remove":
        if ex_id not in ids:
            raise InvalidRevision("that exercise is not in the plan", {"exercise": "not in the plan"})
        return {"exercises": [{"id": i} for i in ids if i != ex_id]}
    if change == "add":
        if not ex_id:
            raise InvalidRevision("choose an exercise to add", {"exercise": "choose one"})
        if ex_id in ids:
            raise InvalidRevision("that exercise is already in the plan",
                                  {"exercise": "already in the plan"})
        return {"exercises": [{"id": i} for i in ids] + [{"id": ex_id}]}
    if change == "dose":
        if ex_id not in ids:
            raise InvalidRevision("that exercise is not in the plan", {"exercise": "not in the plan"})
        problems: dict[str, str] = {}
        dose = {k: _number(form, k, label, problems, low=0, high=600) for k, label in DOSE_INPUTS}
        entry: dict = {"id": ex_id, "dose": dose}
        days = _number(form, "days_per_week", "Days a week", problems, low=1, high=7)
        phase = _number(form, "phase_from", "Starts in stage", problems, low=1, high=4)
        if problems:
            raise InvalidRevision("check the numbers", problems)
        if days is not None:
            entry["days_per_week"] = days
        if phase is not None:
            entry["phase_from"] = phase
        return {"exercises": [entry if i == ex_id else {"id": i} for i in ids]}
    if change in ("note", "precaution"):
        key = "patient_notes" if change == "note" else "precautions"
        text = _one_line(form.get("text"))
        if not text:
            raise InvalidRevision("write the text", {"text": "required"})
        return {key: list(plan.get(key) or []) + [text]}
    # phases: each stage's text (its targets)
    return {"phases": [{"phase": ph.get("phase"),
                        "changes": _one_line(form.get(f"phase-{ph.get('phase')}"))
                        or ph.get("changes")} for ph in plan.get("phases") or []]}


def _field_label(key: str, proposed: dict, names: dict) -> str:
    """A revision's field path in staff words: "Squat to chair: sets"."""
    m = re.match(r"exercises\[(\d+)\]\.?(.*)$", key)
    if m:
        items = proposed.get("exercises") or []
        i = int(m.group(1))
        ex_id = items[i].get("id") if i < len(items) else None
        what = m.group(2).replace("dose.", "").replace("_", " ").replace(".", " ")
        return f"{names.get(ex_id, str(ex_id or 'exercise').replace('_', ' '))}" + (
            f": {what}" if what and what != "id" else "")
    m = re.match(r"phases\[(\d+)\]\.?(.*)$", key)
    if m:
        what = m.group(2).replace("changes", "targets").replace("_", " ")
        return f"Stage {int(m.group(1)) + 1}" + (f": {what}" if what else "")
    labels = dict(DOSE_INPUTS, days_per_week="Days a week", phase_from="Starts in stage")
    if key in labels:
        return labels[key]
    return {"patient_notes": "Note to the patient", "precautions": "Precaution",
            "text": "Text", "reason": "Reason", "override": "Override reason",
            "exercise": "Exercise"}.get(key.split("[")[0], key.replace("_", " "))


@bp.post("/referrals/<referral_id>/plan")
@staff_required
def revise(user: WebUser, referral_id: str):
    """Save one change to a plan held for review as its next version."""
    form = request.form
    change = form.get("change")
    if change not in CHANGES:
        abort(400)
    # the message goes where the change's form was: under an exercise, or the editor
    place = "plan" if change in ("remove", "dose") else "editor"
    with _db().session() as s:
        _load(s, referral_id)
        plan = s.scalar(select(Plan.body).where(Plan.referral_id == referral_id))
    if plan is None:
        return _done(referral_id, "Not saved: this referral has no plan yet.", place, "error")
    typed = {k: v[:TEXT_MAX + 1] for k, v in form.items() if k != "csrf_token"}
    reason = _one_line(form.get("reason"))
    override = _one_line(form.get("override")) or None
    expected = form.get("expected_version", "")
    expected = int(expected) if expected.isdigit() and len(expected) < 6 else None
    proposed: dict = {}
    try:
        proposed = _proposed(change, form, plan)
        if not reason:
            raise InvalidRevision("say why, in one line", {"reason": "required"})
        new = plan_revisions.revise_plan(_pipeline(), referral_id, proposed, actor=user.actor,
                                         reason=reason, override=override,
                                         expected_version=expected)
    except LookupError:
        abort(404)
    except StepError as exc:
        return _done(referral_id, f"Not saved: {exc}.", place, "error")
    except VersionConflict as exc:
        problem = {"kind": "conflict", "current": exc.current}
        return _referral_page(user, referral_id, edit={"problem": problem, "typed": typed},
                              status=409)
    except SafetyRuleBroken as exc:
        names = {e.id: e.name for e in _catalogue()}
        violations = [dict(v, exercise_name=names.get(v.get("exercise"), v.get("exercise")))
                      for v in exc.violations]
        problem = {"kind": "safety", "violations": violations, "overridable": exc.overridable,
                   "override_given": override is not None}
        return _referral_page(user, referral_id, edit={"problem": problem, "typed": typed},
                              status=422)
    except InvalidRevision as exc:
        names = {e.get("id"): e.get("name") for e in plan.get("exercises") or []}
        names.update({e.id: e.name for e in _catalogue() if e.id not in names})
        fields = [(_field_label(k, proposed, names), v) for k, v in exc.fields.items()]
        problem = {"kind": "invalid", "message": exc.message, "fields": fields}
        return _referral_page(user, referral_id, edit={"problem": problem, "typed": typed},
                              status=422)
    return _done(referral_id, f"Saved as version {new['version']}: {reason}", place)


# -- draft documents (rendered on demand from the current version) ---------------------

DRAFT_NAMES = ("handout.pdf", "summary.pdf", "fax.tiff")
DRAFTS_KEPT = 4
_drafts: OrderedDict[tuple, dict[str, bytes]] = OrderedDict()
_drafts_lock = threading.Lock()


def _draft_documents(referral_id: str) -> tuple[int, dict[str, bytes]]:
    """The current version's documents (marked DRAFT by the renderers), rendered once
    per version and kept for a few referrals."""
    with _db().session() as s:
        row = _load(s, referral_id)
        plan = s.scalar(select(Plan.body).where(Plan.referral_id == referral_id))
        if row.status != states.NEEDS_REVIEW or plan is None:
            abort(404)
        referral_in = referral_input(row)
    key = (referral_id, current_version(plan),
           hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest())
    with _drafts_lock:  # one rendering at a time; the page's images then share it
        docs = _drafts.get(key)
        if docs is None:
            from refflow.documents.render import render_all

            p = _pipeline()
            docs = render_all(referral_in, plan, p.clinic, resolution=p.settings.fax_resolution,
                              paper=p.settings.paper)
            _drafts[key] = docs
            while len(_drafts) > DRAFTS_KEPT:
                _drafts.popitem(last=False)
        _drafts.move_to_end(key)
    return key[1], docs


def _draft_pages(referral_id: str) -> dict:
    version, docs = _draft_documents(referral_id)
    return {"version": version,
            "pages": [(name, downloads.page_count(docs[name])) for name in DRAFT_NAMES]}


@bp.get("/referrals/<referral_id>/draft/<name>")
@staff_required
def draft_document(user: WebUser, referral_id: str, name: str):
    if name not in DRAFT_NAMES:
        abort(404)
    version, docs = _draft_documents(referral_id)
    with _db().session() as s:
        _audit(s, user, "document.read", referral_id, detail=f"draft {name} version {version}")
    mimetype = "application/pdf" if name.endswith(".pdf") else "image/tiff"
    response = Response(docs[name], mimetype=mimetype)
    disposition = "inline" if name.endswith(".pdf") else "attachment"
    response.headers["Content-Disposition"] = f'{disposition}; filename="draft-{name}"'
    return downloads.private(response)


@bp.get("/referrals/<referral_id>/draft/<name>/<int:page>.png")
@staff_required
def draft_page(user: WebUser, referral_id: str, name: str, page: int):
    if name not in DRAFT_NAMES:
        abort(404)
    version, docs = _draft_documents(referral_id)
    with _db().session() as s:
        _audit(s, user, "document.read", referral_id,
               detail=f"draft {name} version {version} page {page}")
    response = Response(downloads.page_png(docs[name], page), mimetype="image/png")
    return downloads.private(response)
