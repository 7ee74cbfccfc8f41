"""What staff do to a referral in the pipeline: approve or reject a held plan,
send a failed delivery again (to a corrected target if need be), cancel a
referral (its referring practice may too). Each action
is a state-machine move with who, when and why on the timeline and the audit
trail, committed with the outbox message that carries the work on."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update

from refflow.db.models import AuditEntry, Delivery, Plan, Referral, utcnow
from refflow.documents.names import DECLINE_NAMES, FAX
from refflow.pipeline import outbox
from refflow.pipeline.context import Pipeline, StepError
from refflow.pipeline.flow import referral_input, retry_window
from refflow.pipeline.plan_revisions import actor_name
from refflow.pipeline.routing import safe_error
from refflow.pipeline.stored_documents import store_documents
from refflow.planning import decision
from refflow.referrals import states
from refflow.referrals.states import IllegalTransition


def _review(session, referral_id: str, new: str, *, actor: str, verb: str, action: str,
            note: str | None) -> None:
    """A clinician's decision on a held plan: the transition, its reason, the audit row."""
    row = session.get(Referral, referral_id)
    try:
        states.transition(session, row, new, actor=actor,
                          reason=f"plan {verb}" + (f": {note}" if note else ""))
    except IllegalTransition as exc:
        raise StepError(f"a {exc.current} referral cannot be {verb}") from None
    session.add(AuditEntry(actor=actor, action=action, referral_id=referral_id))


def cancel(session, row: Referral, *, actor: str, reason: str) -> int:
    """Cancel the referral in ``session``: nothing more is sent for it. Waiting
    deliveries are cancelled at once; one the provider holds (a queued fax
    job) is checked now, and the check stops the job if it has not gone
    (``flow.check_delivery``). Raises IllegalTransition. Returns how many
    deliveries were stopped or are being stopped."""
    states.transition(session, row, states.CANCELLED, actor=actor, reason=reason)
    now = utcnow()
    waiting = session.execute(
        update(Delivery).where(Delivery.referral_id == row.id,
                               Delivery.status.in_(("pending", "retrying")))
        .values(status="cancelled", next_attempt_at=None, updated_at=now,
                last_error="the referral was cancelled before this was sent")).rowcount
    held = session.scalars(select(Delivery).where(
        Delivery.referral_id == row.id, Delivery.status == "sending",
        Delivery.claimed_at.is_(None), Delivery.check_at.is_not(None))).all()
    for delivery in held:
        delivery.check_at = now + dt.timedelta(seconds=60)  # this check first; then the sweep
        outbox.enqueue(session, outbox.CHECK_DELIVERY, {"delivery_id": delivery.id})
    if waiting or held:
        states.record_event(session, row.id, "deliveries_cancelled", actor=actor,
                            reason=f"{waiting} waiting deliveries cancelled"
                                   + (f"; {len(held)} queued with the provider being stopped"
                                      if held else ""))
    return waiting + len(held)


def approve(p: Pipeline, referral_id: str, *, actor: str, note: str | None = None) -> str:
    """needs_review → planned, with who and when; delivery continues.

    The approved plan — the latest version, with any clinician's edits — is
    released (``decision.approve``, with who approved it by name), so the
    documents rendered next are the patient's plan and the referrer's released
    summary, not the draft that was held."""
    with p.db.session() as session:
        _review(session, referral_id, states.PLANNED, actor=actor, verb="approved",
                action="plan.approve", note=note)
        plan = session.scalar(select(Plan).where(Plan.referral_id == referral_id))
        plan.approved_by, plan.approved_at = actor, utcnow()
        plan.body = decision.approve(plan.body, at=plan.approved_at, by=actor_name(session, actor))
        plan.decision = plan.body["decision"]
        message = outbox.enqueue(session, outbox.RENDER, {"referral_id": referral_id})
        session.flush()
        ids = [message.id]
    p.relay(ids)
    return states.PLANNED


def reject(p: Pipeline, referral_id: str, *, actor: str, note: str | None = None) -> str:
    """needs_review → rejected, with who, when and why; the referring office is
    sent a "referral not accepted" letter with the reason, by the referral's
    fax and/or the referrer's email (never the patient), in the same
    transaction (``referrer_letters``)."""
    from refflow.documents.decline_letter import render_decline
    from refflow.pipeline.referrer_letters import queue_decline
    from refflow.pipeline.routing import decline_routes

    with p.db.session() as session:
        row = session.get(Referral, referral_id)
        if row is None:
            raise LookupError(referral_id)
        if not states.can_transition(row.status, states.REJECTED):
            raise StepError(f"a {row.status} referral cannot be rejected")
        referral = referral_input(row)
    decided_at = utcnow()
    documents = render_decline(referral, p.clinic, reason=note, decided_at=decided_at,
                               resolution=p.settings.fax_resolution, paper=p.settings.paper)
    with p.db.session() as session:
        _review(session, referral_id, states.REJECTED, actor=actor, verb="rejected",
                action="plan.reject", note=note)
        ids = queue_decline(p, session, session.get(Referral, referral_id), documents,
                            decline_routes(referral), actor=actor)
    p.relay(ids)
    return states.REJECTED


def retry_delivery(p: Pipeline, delivery_id: str, *, actor: str,
                   target: str | None = None) -> Delivery:
    """Send one delivery again: a failed one (optionally to a corrected target),
    one in doubt (staff decided it may not have arrived), or one waiting for its
    next attempt ("send now"). A delivery already sent is never sent again.
    The delivery gets a fresh retry window."""
    with p.db.session() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            raise LookupError(delivery_id)
        if delivery.status not in ("failed", "in_doubt", "retrying"):
            raise StepError(f"only a failed, in-doubt or waiting delivery can be sent again "
                            f"(this one is {delivery.status})")
        row = session.get(Referral, delivery.referral_id)
        if target is not None:
            delivery.target = _checked_target(p, delivery, target)
            if delivery.document == FAX:
                _readdress_fax(p, session, row, delivery.target)
        if row.status == states.FAILED:
            states.transition(session, row, states.DELIVERING, actor=actor,
                              reason=f"staff retry of the {delivery.channel} delivery"
                                     + (" to a corrected target" if target else ""))
        elif row.status != states.DELIVERING and not (
                row.status == states.REJECTED and delivery.document in DECLINE_NAMES):
            raise StepError(f"a {row.status} referral's deliveries cannot be retried")
        delivery.status, delivery.next_attempt_at, delivery.updated_at = "pending", None, utcnow()
        delivery.max_attempts = delivery.attempts + p.settings.delivery_max_attempts
        delivery.retry_until = delivery.updated_at + retry_window(p, delivery.channel)
        states.record_event(session, row.id, "retry_requested", actor=actor,
                            reason=f"{delivery.channel}: staff asked to send again")
        session.add(AuditEntry(actor=actor, action="delivery.retry", referral_id=row.id,
                               detail=f"delivery {delivery.id}"
                                      + ("; target corrected" if target else "")))
        message = outbox.enqueue(session, outbox.DELIVER, {"delivery_id": delivery.id})
        session.flush()
        ids = [message.id]
    p.relay(ids)
    return delivery


def _checked_target(p: Pipeline, delivery: Delivery, target: str) -> str:
    channel = p.channels.get(delivery.channel)
    if channel is None:
        raise StepError(f"no channel named {delivery.channel!r} is installed")
    try:
        return channel.validate_target(target)
    except Exception as exc:  # noqa: BLE001
        raise StepError(safe_error(exc, "the new target is not valid")) from None


def _readdress_fax(p: Pipeline, session, row: Referral, fax_number: str) -> None:
    """Render the fax again with its cover page (and summary) addressed to the
    number staff corrected, so the office that receives it is the one named."""
    from refflow.documents.render import render_fax

    plan = session.scalar(select(Plan.body).where(Plan.referral_id == row.id))
    referral = referral_input(row)
    referral = referral.model_copy(
        update={"referrer": referral.referrer.model_copy(update={"fax": fax_number})})
    store_documents(p.store, session, row.id, {FAX: render_fax(
        referral, plan, p.clinic, resolution=p.settings.fax_resolution, paper=p.settings.paper)})


@dataclass(frozen=True)
class NewLink:
    """What "New link" did: the link's ``url`` (shown to staff once) and the
    email to the patient: ``sent``, ``failed`` (``error`` says why, without
    PHI), ``waiting`` (the first email has not gone yet and will carry the
    new link) or ``none`` (no email to the patient on file)."""

    url: str
    email: str
    error: str | None = None


def new_patient_link(p: Pipeline, referral_id: str, *, actor: str) -> NewLink:
    """A new link to the patient's page for a released plan (the old one stops
    working): the handout is rendered again with the new link's QR code and
    the link the email carries is replaced. A patient the plan was emailed to
    gets the new link and handout by email at once, through the email
    channel that sent the first (its address, the plan's language; a
    Message-ID of its own, so it is not taken for the first); the timeline
    says whether it went. Only the link's hash is kept."""
    from refflow.documents.names import HANDOUT, PATIENT_LINK
    from refflow.pipeline.flow import _language, _recipient_name, _render, _send, _subject
    from refflow.plugins.channels.base import Delivery as ChannelDelivery
    from refflow.referrals import patient_page

    with p.db.session() as session:
        row = session.get(Referral, referral_id)
        if row is None:
            raise LookupError(referral_id)
        plan = session.scalar(select(Plan.body).where(Plan.referral_id == referral_id))
        if (plan or {}).get("decision") != "release" or row.status not in (
                states.DELIVERING, states.COMPLETED, states.FAILED):
            raise StepError("a patient link is made for a released plan only")
        referral = referral_input(row)
    token = patient_page.new_token()
    documents = _render(p, referral, plan, token)
    sending = {HANDOUT: documents[HANDOUT], PATIENT_LINK: documents[PATIENT_LINK]}
    with p.db.session() as session:
        store_documents(p.store, session, referral_id, sending)
        link, _token = patient_page.make_link(session, referral_id, token=token,
                                              days=p.settings.patient_link_days, actor=actor)
        email = session.scalar(select(Delivery).where(
            Delivery.referral_id == referral_id, Delivery.channel == "email",
            Delivery.document == HANDOUT))
        url = patient_page.link_url(p.settings.public_url, token)
        if email is None:
            return NewLink(url, "none")
        if email.status in ("pending", "retrying", "sending"):
            return NewLink(url, "waiting")  # it reads the stored link when it goes
        request = ChannelDelivery(
            id=f"{email.id}.link-{link.id}", referral_id=referral_id, channel=email.channel,
            target=email.target, documents=sending, document_name=HANDOUT,
            subject=_subject(p, email), language=_language(session, email),
            recipient_name=_recipient_name(session.get(Referral, referral_id).payload, email))
        email_id = email.id
    outcome = _send(p.channels.get(request.channel), request)
    went = outcome.outcome in ("sent", "held")
    with p.db.session() as session:
        states.record_event(
            session, referral_id, "patient_link_emailed" if went else "patient_link_email_failed",
            actor=actor, delivery_id=email_id,
            reason="email: the new patient link sent to the patient" if went
            else f"email: the new patient link was not sent ({outcome.error})")
    return NewLink(url, "sent" if went else "failed", None if went else outcome.error)
