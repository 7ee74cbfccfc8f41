"""Staff pages: the queue dashboard, a referral with everything about it, and the
staff actions (approve / reject, retry or correct a delivery, cancel).

Actions go through the pipeline's steps (they write the timeline and the audit
trail); every view of a referral is audited as ``referral.view``.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
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
from refflow.pipeline import staff_actions
from refflow.pipeline.context import Pipeline, StepError
from refflow.pipeline.overview import queue_overview
from refflow.referrals import queries, states
from refflow.web import downloads, queue
from refflow.web.auth import WebUser, current_user, home_for, staff_required

bp = Blueprint("staff", __name__)

FILTERS_KEY = "queue_filters"
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

def _queue_context(user: WebUser) -> dict:
    filters = queue.Filters.from_session(session.get(FILTERS_KEY), current_app.secret_key)
    overview = queue_overview(_db(), current_app.extensions.get("refflow.broker_stats"))
    with _db().session() as s:
        rows, total = queue.search(s, filters, _settings().clinic_timezone)
        review = queue.review_queue(s)
        due_days = _settings().plan_due_days
        overdue, overdue_total = queue.plan_overdue(s, due_days, utcnow())
        practices = queue.practices(s)
        failing = {d["referral_id"] for d in overview["failures"]}
        names = {r.id: queue.patient_name(r) for r in
                 s.scalars(select(Referral).where(Referral.id.in_(failing)))} if failing else {}
        _audit(s, user, "queue.read")
        ctx = {
            "filters": filters,
            "overview": overview,
            "rows": [(r, practice, failed, queue.patient_name(r)) for r, practice, failed in rows],
            "total": total,
            "review": [(r, practice, queue.patient_name(r)) for r, practice in review],
            "overdue": [(r, practice, queue.patient_name(r)) for r, practice in overdue],
            "overdue_total": overdue_total,
            "plan_due_days": due_days,
            "practices": practices,
            "failure_names": names,
            "states": states.STATES,
            "limit": queue.LIMIT,
            "now": utcnow(),
        }
    return ctx


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
    return render_template("staff/dashboard.html", user=user, **_queue_context(user))


@bp.get("/queue/fragment")
@staff_required
def queue_fragment(user: WebUser):
    response = Response(render_template("staff/_queue.html", user=user,
                                        **_queue_context(user)))
    return downloads.private(response)


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
    }


def _plan_sent(deliveries, docs) -> dict | None:
    """Proof the plan reached the referrer (when, channel, confirmation, pages)."""
    import datetime as dt

    proof = queries.plan_sent_to_referrer(deliveries, {d.name: d.pages for d in docs})
    return dict(proof, at=dt.datetime.fromisoformat(proof["at"])) if proof else None


@bp.get("/referrals/<referral_id>")
@staff_required
def referral(user: WebUser, referral_id: str):
    with _db().session() as s:
        row = _load(s, referral_id)
        _audit(s, user, "referral.view", row.id)
        ctx = referral_context(s, row)
        body = render_template("staff/referral.html", user=user, **ctx)
    return downloads.private(Response(body))


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
        content = doc.content
    response = Response(downloads.fax_page_png(content, page), mimetype="image/png")
    return downloads.private(response)


def _note(field: str = "note") -> str | None:
    note = (request.form.get(field) or "").strip()
    if len(note) > NOTE_MAX:
        note = note[:NOTE_MAX]
    return note or None


def _back(referral_id: str):
    return redirect(url_for("staff.referral", referral_id=referral_id) + "#actions")


@bp.post("/referrals/<referral_id>/approve")
@staff_required
def approve(user: WebUser, referral_id: str):
    with _db().session() as s:
        _load(s, referral_id)
    try:
        staff_actions.approve(_pipeline(), referral_id, actor=user.actor, note=_note())
        flash("Plan approved. The documents will now be prepared and sent.", "success")
    except StepError as exc:
        flash(f"Not approved: {exc}.", "error")
    return _back(referral_id)


@bp.post("/referrals/<referral_id>/reject")
@staff_required
def reject(user: WebUser, referral_id: str):
    note = _note()
    if not note:
        flash("Say why the plan is rejected (the note is required).", "error")
        return _back(referral_id)
    with _db().session() as s:
        _load(s, referral_id)
    try:
        staff_actions.reject(_pipeline(), referral_id, actor=user.actor, note=note)
        flash("Plan rejected. The patient gets nothing; the referring office is sent "
              "a letter with your reason.", "success")
    except StepError as exc:
        flash(f"Not rejected: {exc}.", "error")
    return _back(referral_id)


@bp.post("/referrals/<referral_id>/cancel")
@staff_required
def cancel(user: WebUser, referral_id: str):
    reason = _note("reason")
    with _db().session() as s:
        row = _load(s, referral_id)
        try:
            states.transition(s, row, states.CANCELLED, actor=user.actor,
                              reason="cancelled by staff" + (f": {reason}" if reason else ""))
        except states.IllegalTransition as exc:
            s.rollback()
            flash(f"A {exc.current} referral cannot be cancelled.", "error")
            return _back(referral_id)
        _audit(s, user, "referral.cancel", row.id)
    flash("Referral cancelled.", "success")
    return _back(referral_id)


@bp.post("/deliveries/<delivery_id>/retry")
@staff_required
def retry(user: WebUser, delivery_id: str):
    with _db().session() as s:
        delivery = s.get(Delivery, delivery_id)
        if delivery is None:
            abort(404)
        referral_id, old_target = delivery.referral_id, delivery.target
    target = (request.form.get("target") or "").strip()[:254] or None
    if target == old_target:
        target = None
    try:
        staff_actions.retry_delivery(_pipeline(), delivery_id, actor=user.actor, target=target)
        flash("Sending again" + (" to the corrected address." if target else "."), "success")
    except LookupError:
        abort(404)
    except StepError as exc:
        flash(f"Not sent again: {exc}.", "error")
    return redirect(url_for("staff.referral", referral_id=referral_id)
                    + f"#delivery-{delivery_id}")
