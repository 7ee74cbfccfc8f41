"""The referring-office portal: submit a referral through a form, then follow the
practice's own referrals and read their documents; register webhook endpoints
and read their delivery logs.

A practice user only ever reaches referrals of their own practice; any other
id answers the same 404 page as an id that does not exist.
"""

from __future__ import annotations

import datetime as dt

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from refflow.db.models import AuditEntry, Delivery, Document, Plan, Practice, ReferralEvent
from refflow.documents.names import DECLINE_NAMES
from refflow.intake.validation import clinic_today
from refflow.interop import webhooks
from refflow.pipeline import accept as intake
from refflow.referrals import queries, states
from refflow.web import downloads, forms, paper_forms, queue, refused_reads
from refflow.web.auth import WebUser, practice_required
from refflow.web.formatting import STATE_HELP

bp = Blueprint("portal", __name__, url_prefix="/portal")

PAGE = 100


def _db():
    return current_app.extensions["refflow.db"]


def _audit(s, user: WebUser, action: str, referral_id: str | None = None,
           detail: str | None = None) -> None:
    s.add(AuditEntry(actor=user.actor, action=action, referral_id=referral_id,
                     ip=request.remote_addr, detail=detail))


def _own(s, user: WebUser, referral_id: str):
    referral = queries.visible(s, referral_id, user.practice_id)
    if referral is None:
        refused_reads.refused(user.actor, referral_id)
        abort(404)
    return referral


@bp.get("/")
@practice_required
def index(user: WebUser):
    with _db().session() as s:
        rows, _ = queries.page(s, practice_id=user.practice_id, limit=PAGE)
        ids = [r.id for r in rows]
        docs: dict[str, list[str]] = {}
        if ids:
            for rid, name in s.execute(select(Document.referral_id, Document.name)
                                       .where(Document.referral_id.in_(ids))):
                docs.setdefault(rid, []).append(name)
        # only what the decision reads: a whole plan is ~34 KB of JSON a row
        plans = {rid: {"decision": decided, "flags": flags} for rid, decided, flags in s.execute(
            select(Plan.referral_id, Plan.body["decision"], Plan.body["flags"])
            .where(Plan.referral_id.in_(ids)))} if ids else {}
        _audit(s, user, "referral.list")
        items = [{"id": r.id, "name": queue.patient_name(r), "external_id": r.external_id,
                  "status": r.status, "created_at": r.created_at,
                  "decision": queries.decision(r, plans.get(r.id), [], []),
                  "documents": [n for n in downloads.NAMES if n in docs.get(r.id, [])]}
                 for r in rows]
    return downloads.private(Response(render_template("portal/index.html", user=user,
                                                      items=items)))


@bp.route("/referrals/new", methods=["GET", "POST"])
@practice_required
def new_referral(user: WebUser):
    if request.method == "GET":
        with _db().session() as s:
            practice = s.get(Practice, user.practice_id)
            values = forms.defaults(practice.fax if practice else None,
                                    practice.email if practice else None)
        return _form(user, values, {})

    values = forms.posted_values(request.form)
    settings = current_app.extensions["refflow.settings"]
    referral, body, errors = forms.validate(values, today=clinic_today(settings.clinic_timezone))
    if referral is None:
        return _form(user, values, errors), 422
    submitter = intake.Submitter(practice_id=user.practice_id, actor=user.actor,
                                 ip=request.remote_addr, request_id=g.get("request_id"))
    answer = intake.accept(
        _db(), submitter, body, referral, idempotency_key=None,
        clinic_timezone=settings.clinic_timezone,
        find_problems=current_app.extensions.get("refflow.find_problems"),
        retention=current_app.config["IDEMPOTENCY_RETENTION"],
    )
    if answer["status"] == states.REJECTED:
        flash("The referral was received but not accepted by the clinic's intake rules. "
              "The clinic will contact you.", "error")
    else:
        flash("Thank you: the referral was received. This page follows its progress.",
              "success")
    return redirect(url_for("portal.referral", referral_id=answer["id"]))


def _form(user: WebUser, values: dict, errors: dict):
    shown = {name: forms.message(text, name) for name, text in errors.items()}
    body = render_template("portal/form.html", user=user, fieldsets=forms.FIELDSETS,
                           values=values, errors=shown, summary=forms.summary(shown))
    return downloads.private(Response(body))


def _detail(s, referral) -> dict:
    events = s.scalars(select(ReferralEvent).where(ReferralEvent.referral_id == referral.id,
                                                   ReferralEvent.kind == "status")
                       .order_by(ReferralEvent.id)).all()
    deliveries = s.scalars(select(Delivery).where(Delivery.referral_id == referral.id)
                           .order_by(Delivery.created_at, Delivery.id)).all()
    names = set(s.scalars(select(Document.name).where(Document.referral_id == referral.id)))
    outcome = queries.outcome(s, referral, events, deliveries)
    decision = outcome["decision"]
    return {"referral": referral, "patient_name": queue.patient_name(referral),
            "events": events, "deliveries": [(d, _sending(d)) for d in deliveries],
            "documents": [n for n in downloads.NAMES if n in names],
            "terminal": referral.status in states.TERMINAL,
            "decision": decision, "progress": _progress(referral.status, decision["kind"]),
            "plan_sent": _sent(outcome["plan_sent_to_referrer"]),
            "duplicate_of": next((p["duplicate_of"] for p in referral.intake_problems or []
                                  if p.get("duplicate_of")), None)}


def _progress(status: str, kind: str) -> str:
    """How far the sending got, in words that follow the decision: "everything
    was delivered" is said of a released plan only."""
    if status == states.COMPLETED and kind != "released":
        return "Finished: the plan summary was sent to you. The patient was not sent an " \
               "exercise plan."
    if status == states.REJECTED:
        return "Finished: nothing will be sent to the patient."
    return STATE_HELP.get(status, "")


def _sending(delivery) -> str:
    """What a delivery is, for the referring office."""
    if delivery.document in DECLINE_NAMES:
        return {"fax": "Letter to you by fax", "email": "Letter to you by email"}.get(
            delivery.channel, f"Letter to you ({delivery.channel})")
    return {"fax": "Plan summary to you by fax", "email": "Exercise plan to the patient by "
            "email", "pdf": "Copy for the clinic's chart"}.get(delivery.channel,
                                                             delivery.channel)


def _sent(proof: dict | None) -> dict | None:
    if proof is None:
        return None
    return dict(proof, at=dt.datetime.fromisoformat(proof["at"]),
                by={"fax": "fax", "email": "email"}.get(proof["channel"], proof["channel"]))


@bp.get("/referrals/<referral_id>")
@practice_required
def referral(user: WebUser, referral_id: str):
    with _db().session() as s:
        row = _own(s, user, referral_id)
        _audit(s, user, "referral.view", row.id)
        body = render_template("portal/referral.html", user=user, **_detail(s, row))
    return downloads.private(Response(body))


@bp.get("/referrals/<referral_id>/status")
@practice_required
def status_fragment(user: WebUser, referral_id: str):
    with _db().session() as s:
        row = _own(s, user, referral_id)
        body = render_template("portal/_status.html", user=user, **_detail(s, row))
    return downloads.private(Response(body))


@bp.get("/referrals/<referral_id>/documents/<name>")
@practice_required
def document(user: WebUser, referral_id: str, name: str):
    with _db().session() as s:
        row = _own(s, user, referral_id)
        doc = downloads.load(s, row.id, name)
        _audit(s, user, "document.read", row.id, detail=name)
        return downloads.file_response(doc)


@bp.get("/forms/referral.pdf")
@practice_required
def referral_form(user: WebUser):
    """refflow's referral form printed for this practice (its barcode names it)."""
    return paper_forms.form_response(user.practice_id, user.practice_name)


# -- webhooks: the practice's endpoints and their delivery logs ---------------------

def _pipeline():
    return current_app.extensions["refflow.pipeline"]


def _webhooks_page(user: WebUser, values: dict | None = None, error: str | None = None):
    with _db().session() as s:
        endpoints = webhooks.endpoints(s, user.practice_id)
        _audit(s, user, "webhook.list")
        body = render_template("portal/webhooks.html", user=user, endpoints=endpoints,
                               event_types=webhooks.EVENT_TYPES, values=values or {},
                               error=error)
    return downloads.private(Response(body))


@bp.get("/webhooks")
@practice_required
def webhooks_index(user: WebUser):
    return _webhooks_page(user)


@bp.post("/webhooks")
@practice_required
def webhooks_add(user: WebUser):
    values = {"url": request.form.get("url", "")[:2001],
              "description": request.form.get("description", "")[:201],
              "event_types": request.form.getlist("event_types")}
    try:
        with _db().session() as s:
            endpoint, secret = webhooks.register(
                s, current_app.extensions["refflow.settings"], user.practice_id,
                values["url"], description=values["description"],
                event_types=values["event_types"], actor=user.actor, ip=request.remote_addr)
            endpoint_id, url = endpoint.id, endpoint.url
    except webhooks.WebhookError as exc:
        return _webhooks_page(user, values, str(exc)), 422
    return _secret_page(user, endpoint_id, url, secret, created=True)


def _secret_page(user: WebUser, endpoint_id: str, url: str, secret: str, *, created: bool):
    """The signing secret, shown this once (never in a URL, a cookie or a log)."""
    body = render_template("portal/webhooks_secret.html", user=user, endpoint_id=endpoint_id,
                           url=url, secret=secret, created=created)
    return downloads.private(Response(body))


@bp.get("/webhooks/<endpoint_id>")
@practice_required
def webhooks_endpoint(user: WebUser, endpoint_id: str):
    with _db().session() as s:
        try:
            endpoint = webhooks.find_endpoint(s, endpoint_id, user.practice_id)
        except webhooks.WebhookError:
            abort(404)
        log = webhooks.messages(s, endpoint.id)
        _audit(s, user, "webhook.view", detail=f"endpoint {endpoint.id}")
        body = render_template("portal/webhooks_endpoint.html", user=user, endpoint=endpoint,
                               messages=log, limit=webhooks.LOG_LIMIT)
    return downloads.private(Response(body))


@bp.post("/webhooks/<endpoint_id>/disable")
@practice_required
def webhooks_disable(user: WebUser, endpoint_id: str):
    with _db().session() as s:
        try:
            webhooks.disable(s, endpoint_id, practice_id=user.practice_id, actor=user.actor,
                             ip=request.remote_addr)
        except webhooks.WebhookError:
            abort(404)
    flash("The endpoint is disabled: nothing more is sent to it.", "success")
    return redirect(url_for("portal.webhooks_endpoint", endpoint_id=endpoint_id))


@bp.post("/webhooks/<endpoint_id>/secret")
@practice_required
def webhooks_rotate(user: WebUser, endpoint_id: str):
    with _db().session() as s:
        try:
            endpoint = webhooks.find_endpoint(s, endpoint_id, user.practice_id)
            secret = webhooks.rotate_secret(s, current_app.extensions["refflow.settings"],
                                            endpoint.id, practice_id=user.practice_id,
                                            actor=user.actor, ip=request.remote_addr)
            url = endpoint.url
        except webhooks.WebhookError as exc:
            flash(f"The secret was not changed: {exc}.", "error")
            return redirect(url_for("portal.webhooks_endpoint", endpoint_id=endpoint_id))
    return _secret_page(user, endpoint_id, url, secret, created=False)


@bp.post("/webhooks/<endpoint_id>/resend")
@practice_required
def webhooks_resend(user: WebUser, endpoint_id: str):
    """Send one message of the log again (the form names it: message ids are
    not refflow ids, so not a path part)."""
    message_id = request.form.get("message_id", "")[:40]
    with _db().session() as s:
        try:
            webhooks.find_endpoint(s, endpoint_id, user.practice_id)
        except webhooks.WebhookError:
            abort(404)
    try:
        webhooks.resend(_pipeline(), message_id, practice_id=user.practice_id,
                        endpoint_id=endpoint_id, actor=user.actor, ip=request.remote_addr)
    except webhooks.WebhookError as exc:
        flash(f"Not sent again: {exc}.", "error")
    else:
        flash(f"Message {message_id} is being sent again (same webhook-id).", "success")
    return redirect(url_for("portal.webhooks_endpoint", endpoint_id=endpoint_id))
