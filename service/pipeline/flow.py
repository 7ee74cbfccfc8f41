"""The referral's way through the workers: what each step does to the database.

    build_plan ─▶ render_documents ─▶ deliver (one per delivery) ─▶ finalize

Celery tasks (refflow.workers.tasks) are thin wrappers around these functions.
Every step is idempotent: it checks the state it expects (a conditional update
through the state machine, or a conditional claim) and does nothing when
another run got there first, so a message delivered twice never acts twice.
Each step commits its change together with the outbox message for the next
step, then relays what it wrote (the scheduler's relay is the backstop). One
implementation runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from refflow.config import Settings
from refflow.db.models import (
    Delivery,
    DeliveryAttempt,
    Document,
    Plan,
    PlanVersion,
    Referral,
    new_id,
    utcnow,
)
from refflow.documents.names import FOR_THE_REFERRER
from refflow.intake.schemas import Referral as ReferralIn
from refflow.pipeline import outbox
from refflow.pipeline.context import WORKER, Pipeline
from refflow.pipeline.routing import delivery_fields, routes_for_plan
from refflow.pipeline.stored_documents import document_bytes, store_documents
from refflow.planning.decision import with_flags
from refflow.referrals import patient_page, states
from refflow.referrals.states import IllegalTransition

log = logging.getLogger("refflow.pipeline")

# a delivery that needs no worker now ("cancelled": its referral was, before it went)
ENDED = frozenset({"sent", "failed", "in_doubt", "cancelled"})


def referral_input(row: Referral) -> ReferralIn:
    return ReferralIn.model_validate(row.payload)


def needs_staff(plan: dict) -> bool:
    """Whether staff should see this referral among the flagged ones: its plan
    is held for review, or carries a ``needs_review`` flag that a released
    decision does not wait for (a red flag's ``do_not_exercise`` goes to the
    referrer at once, and staff must know of it)."""
    return plan.get("decision") == "review" or any(
        f.get("severity") == "needs_review" for f in plan.get("flags", []))


def retry_window(p: Pipeline, channel_name: str) -> dt.timedelta:
    """How long a delivery through this channel is retried: the channel's own
    ``retry_window_hours``, else the clinic's ``REFFLOW_RETRY_WINDOW_HOURS``."""
    hours = getattr(p.channels.get(channel_name), "retry_window_hours", None)
    return dt.timedelta(hours=p.settings.retry_window_hours if hours is None else hours)


# -- build_plan -----------------------------------------------------------------

def build_plan(p: Pipeline, referral_id: str) -> str | None:
    """received → planning → needs_review, or — for a plan that goes out —
    planned → delivering with its documents rendered and deliveries queued in
    the same transaction. Returns the referral's status."""
    from refflow.plugins.manager import plan_for

    with p.db.session() as session:
        row = session.get(Referral, referral_id)
        if row is None:
            log.warning("build_plan: no referral %s", referral_id)
            return None
        if row.status == states.RECEIVED:
            states.transition(session, row, states.PLANNING, actor=WORKER,
                              reason="building the exercise plan")
        if row.status != states.PLANNING:
            return row.status  # already planned (a duplicate message): nothing to do
        referral, received_on = referral_input(row), row.received_on
        problems = row.intake_problems or []

    plan = plan_for(referral, as_of=received_on, pm=p.pm, locale=p.settings.clinic_locale,
                    allow_unreviewed_translations=p.settings.allow_unreviewed_translations)
    plan = with_flags(plan, [
        {"code": pr["code"], "severity": pr["severity"], "message": pr["message"],
         "source": pr.get("source", "intake")}
        for pr in problems if pr.get("severity") in {"needs_review", "caution"}])
    rendered = None
    if plan["decision"] != "review":
        routes, failures = routes_for_plan(p, referral, plan)
        # A routing plugin failed: staff decide before anything is sent where the
        # clinic's rules could not say (on approval the default routing applies).
        plan = with_flags(plan, [f.as_flag() for f in failures])
        if plan["decision"] != "review":
            token = patient_page.new_token() if plan["decision"] == "release" else None
            rendered = _render(p, referral, plan, token), routes, token

    with p.db.session() as session:
        row = session.get(Referral, referral_id)
        if row.status != states.PLANNING:
            return row.status  # cancelled meanwhile, or another run finished first
        _save_plan(session, referral_id, plan)
        row.flagged = row.flagged or needs_staff(plan)
        for flag in plan["flags"]:
            if flag.get("code") == "plugin_failed":
                states.record_event(session, referral_id, "plugin_failed", actor=WORKER,
                                    reason=flag["message"])
        if rendered is None:
            codes = sorted({f["code"] for f in plan["flags"] if f.get("severity") == "needs_review"})
            states.transition(session, row, states.NEEDS_REVIEW, actor=WORKER,
                              reason="held for a clinician: " + ", ".join(codes))
            return row.status
        states.transition(session, row, states.PLANNED, actor=WORKER,
                          reason=f"plan built ({plan['decision']})")
        messages = _queue_deliveries(p, session, row, *rendered)
        status = row.status
    p.relay(messages)
    return status


def _save_plan(session, referral_id: str, plan: dict) -> None:
    row = session.scalar(select(Plan).where(Plan.referral_id == referral_id))
    if row is None:
        row = Plan(referral_id=referral_id)
        session.add(row)
    row.decision, row.body = plan["decision"], plan
    row.engine_version = str(plan.get("engine_version", ""))
    # version 1, the engine's draft, is kept with every later version (plan_revisions)
    version = plan.get("version", 1)
    if session.scalar(select(PlanVersion.id).where(PlanVersion.referral_id == referral_id,
                                                   PlanVersion.version == version)) is None:
        session.add(PlanVersion(referral_id=referral_id, version=version, body=plan,
                                author="engine", reason="the engine's draft"))


# -- render_documents -----------------------------------------------------------

def render_documents(p: Pipeline, referral_id: str) -> str | None:
    """planned → delivering: render the documents, create one delivery per route
    (a plan approved by a clinician comes this way)."""
    with p.db.session() as session:
        row = session.get(Referral, referral_id)
        if row is None or row.status != states.PLANNED:
            return row.status if row else None
        plan = session.scalar(select(Plan.body).where(Plan.referral_id == referral_id))
        referral = referral_input(row)

    routes, failures = routes_for_plan(p, referral, plan)
    token = patient_page.new_token() if plan.get("decision") == "release" else None
    documents = _render(p, referral, plan, token)

    with p.db.session() as session:
        row = session.get(Referral, referral_id)
        if row.status != states.PLANNED:
            return row.status
        for failure in failures:  # approved by staff: the default routing applied
            states.record_event(session, row.id, "plugin_failed", actor=WORKER,
                                reason=failure.message)
        messages = _queue_deliveries(p, session, row, documents, routes, token)
        status = row.status
    p.relay(messages)
    return status


def _render(p: Pipeline, referral: ReferralIn, plan: dict,
            patient_token: str | None = None) -> dict[str, bytes]:
    """The documents; with a patient token (a released plan) the handout
    carries the patient's link as a QR code, and the link's URL is kept as
    the ``patient-link.txt`` document for the email to the patient."""
    from refflow.documents.names import PATIENT_LINK
    from refflow.documents.render import render_all

    url = patient_page.link_url(p.settings.public_url, patient_token) if patient_token else None
    documents = render_all(referral, plan, p.clinic, resolution=p.settings.fax_resolution,
                           paper=p.settings.paper, patient_url=url)
    if url:
        documents[PATIENT_LINK] = url.encode()
    return documents


def _queue_deliveries(p: Pipeline, session, row: Referral, documents: dict[str, bytes],
                      routes: list[dict], patient_token: str | None = None) -> list[int]:
    """planned → delivering in ``session``: store the documents (and make the
    patient's link the handout carries), create the deliveries and queue one
    ``deliver`` message each (or ``finalize``). Returns the outbox messages' ids."""
    store_documents(p.store, session, row.id, documents)
    if patient_token:
        patient_page.make_link(session, row.id, token=patient_token,
                               days=p.settings.patient_link_days, actor=WORKER)
    created = create_deliveries(p, session, row, routes, actor=WORKER)
    states.transition(session, row, states.DELIVERING, actor=WORKER,
                      reason=f"documents rendered; {len(created)} deliveries queued")
    messages = [outbox.enqueue(session, outbox.DELIVER, outbox.message_args(
        delivery_id=d.id, request_id=row.request_id)) for d in created] or [
        outbox.enqueue(session, outbox.FINALIZE, outbox.message_args(
            referral_id=row.id, request_id=row.request_id))]
    session.flush()
    return [m.id for m in messages]


def create_deliveries(p: Pipeline, session, row: Referral, routes: list[dict], *,
                      actor: str) -> list[Delivery]:
    """One delivery per route (a route the referral has already is skipped),
    with its retry window; returns the pending ones. A route whose channel is
    missing or refuses the target fails at once, on the timeline for staff."""
    existing = {(d.channel, d.document) for d in session.scalars(
        select(Delivery).where(Delivery.referral_id == row.id))}
    created, now = [], utcnow()
    for route in routes:
        if (route["channel"], route["document"]) in existing:
            continue
        existing.add((route["channel"], route["document"]))
        delivery = Delivery(id=new_id(), referral_id=row.id, referral_created_at=row.created_at,
                            max_attempts=p.settings.delivery_max_attempts,
                            created_at=now, updated_at=now,
                            retry_until=now + retry_window(p, route["channel"]),
                            **delivery_fields(p, route))
        session.add(delivery)
        if delivery.status == "pending":
            created.append(delivery)
        else:
            states.record_event(session, row.id, "delivery_failed", actor=actor,
                                reason=f"{delivery.channel}: {delivery.last_error}",
                                delivery_id=delivery.id)
    session.flush()
    return created


# -- deliver --------------------------------------------------------------------

def deliver(p: Pipeline, delivery_id: str) -> str | None:
    """Claim the delivery (pending/retrying → sending, by exactly one worker, only
    while its referral is delivering — or, for the "not accepted" letter, is
    rejected — and only when due), send it through its channel, record the
    outcome. Returns the delivery's status."""
    from refflow.documents.names import DECLINE_NAMES
    from refflow.plugins.channels.base import Delivery as ChannelDelivery

    now = utcnow()
    with p.db.session() as session:
        delivering = select(Referral.id).where(Referral.status == states.DELIVERING)
        # A rejected referral's only deliveries are its "not accepted" letter.
        rejected = select(Referral.id).where(Referral.status == states.REJECTED)
        delivery = session.scalars(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status.in_(("pending", "retrying")),
                   (Delivery.next_attempt_at.is_(None)) | (Delivery.next_attempt_at <= now),
                   Delivery.referral_id.in_(delivering)
                   | (Delivery.document.in_(DECLINE_NAMES) & Delivery.referral_id.in_(rejected)))
            .values(status="sending", attempts=Delivery.attempts + 1, claimed_at=now,
                    updated_at=now)
            .returning(Delivery)
            .execution_options(synchronize_session=False)
        ).one_or_none()
        if delivery is None:
            # sent, failed, not due, gone, another worker holds it, or not delivering
            return session.scalar(select(Delivery.status).where(Delivery.id == delivery_id))
        attempt = DeliveryAttempt(delivery_id=delivery.id, number=delivery.attempts,
                                  started_at=now, outcome="sending")
        session.add(attempt)
        session.flush()
        channel = p.channels.get(delivery.channel)
        needs = set(getattr(channel, "documents", ()) or ()) | {delivery.document}
        documents = {doc.name: document_bytes(p.store, doc) for doc in session.scalars(
            select(Document).where(
                Document.referral_id == delivery.referral_id, Document.name.in_(needs)))}
        payload = session.scalar(select(Referral.payload)
                                 .where(Referral.id == delivery.referral_id))
        language = _language(session, delivery)
        request = ChannelDelivery(
            id=delivery.id, referral_id=delivery.referral_id, channel=delivery.channel,
            target=delivery.target, documents=documents, document_name=delivery.document,
            subject=_subject(p, delivery),
            recipient_name=_recipient_name(payload, delivery), attempt=delivery.attempts,
            language=language)
        attempt_id = attempt.id

    with _claim_kept(p, delivery_id):
        sent = _send(channel, request)
        status, message = _record_until_done(p, delivery_id, attempt_id, sent)
    p.relay(message)  # publishes the retry when it is due now (backoff 0); else the scheduler
    return status


@contextmanager
def _claim_kept(p: Pipeline, delivery_id: str):
    """Renew the delivery's claim (``claimed_at``) every third of the lease while
    it is being sent: a claim older than the lease means its worker stopped,
    and the scheduler's sweep finds it within seconds (``redrive``)."""
    stop = threading.Event()
    every = p.settings.delivery_lease_seconds / 3

    def renew() -> None:
        while not stop.wait(every):
            try:
                with p.db.session() as session:
                    session.execute(update(Delivery).where(
                        Delivery.id == delivery_id, Delivery.status == "sending",
                        Delivery.claimed_at.is_not(None))  # not once a provider holds it
                        .values(claimed_at=utcnow()))
            except Exception as exc:  # noqa: BLE001 - the database is away: the lease may lapse
                log.warning("delivery %s: claim not renewed (%s)", delivery_id,
                            type(exc).__name__)

    thread = threading.Thread(target=renew, name="refflow-claim", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True)
class Outcome:
    """What a channel answered: ``sent``, ``held`` (the provider queued it: a
    fax job to follow), ``transient`` or ``permanent`` (with the error), and
    what the provider confirmed (``detail``: pages, call seconds, job id, ...)."""

    outcome: str
    error: str | None = None
    reference: str | None = None
    detail: dict | None = None


def _send(channel, request) -> Outcome:
    """Call the channel."""
    from refflow.plugins.channels.base import ChannelError

    if channel is None:
        return Outcome("permanent", f"no channel named {request.channel!r} is installed")
    try:
        result = channel.send(request)
    except ChannelError as exc:
        return Outcome("permanent" if exc.permanent else "transient", exc.message[:500])
    except Exception as exc:  # noqa: BLE001 - a plugin bug: treat as permanent, tell staff
        error = f"channel {request.channel!r} raised {type(exc).__name__}"
        log.error("delivery %s: %s", request.id, error)
        return Outcome("permanent", error)
    return Outcome("held" if getattr(result, "held", False) else "sent",
                   reference=str(getattr(result, "reference", "") or "")[:200],
                   detail=_json_detail(getattr(result, "detail", None)))


def _json_detail(detail) -> dict | None:
    """A provider's confirmation as JSON-safe scalars (what the delivery keeps)."""
    if not detail:
        return None
    return {str(k): v for k, v in dict(detail).items()
            if isinstance(v, (str, int, float, bool)) or v is None}


def _record_until_done(p: Pipeline, delivery_id: str, attempt_id: int,
                       sent: Outcome) -> tuple[str, list[int]]:
    """Record what the channel answered even if the database went away during
    the send: only this worker knows whether the message went, so it keeps
    trying (and keeps its claim) until the database is back, within the
    task's time limit, rather than leave the delivery to be found in doubt."""
    deadline = time.monotonic() + max(10.0, p.settings.task_time_limit - 15.0)
    wait = 0.5
    while True:
        try:
            return _record_outcome(p, delivery_id, attempt_id, sent)
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() + wait > deadline:
                raise
            log.warning("delivery %s: outcome not recorded yet (%s); trying again in %.1f s",
                        delivery_id, type(exc).__name__, wait)
            time.sleep(wait)
            wait = min(wait * 2, 5.0)


def _subject(p: Pipeline, delivery: Delivery) -> str:
    from refflow.documents.names import HANDOUT

    if delivery.document == HANDOUT:
        return f"Your exercise plan from {p.clinic.name}"
    return f"Referral plan summary from {p.clinic.name}"


def _language(session, delivery: Delivery) -> str:
    """The patient's handout goes with words in the plan's language (the one
    the engine chose for the patient); everything else in the clinic's."""
    from refflow.documents.names import HANDOUT

    if delivery.document != HANDOUT:
        return "en"
    plan = session.scalar(select(Plan.body).where(Plan.referral_id == delivery.referral_id))
    return str((plan or {}).get("language") or "en")


def _recipient_name(payload: dict, delivery: Delivery) -> str | None:
    from refflow.documents.names import HANDOUT

    if delivery.document == HANDOUT:
        patient = payload.get("patient", {})
        return f"{patient.get('given_name', '')} {patient.get('family_name', '')}".strip() or None
    return payload.get("referrer", {}).get("name")


def backoff_seconds(settings: Settings, attempt: int, rng=random) -> float:
    """Exponential backoff with full jitter between 50 % and 100 % of the step."""
    step = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempt - 1))
    return step * (0.5 + rng.random() / 2)


def _record_outcome(p: Pipeline, delivery_id: str, attempt_id: int | None,
                    sent: Outcome) -> tuple[str, list[int]]:
    """Close the attempt and move the delivery on (sent, held for the provider,
    retrying, failed, cancelled); the last delivery of a referral to end
    finalizes it. Returns the delivery's status and the outbox message a retry
    queued."""
    now = utcnow()
    outcome, error = sent.outcome, sent.error
    with p.db.session() as session:
        delivery = session.get(Delivery, delivery_id)
        # Outcomes of one referral's deliveries are recorded one at a time (row
        # lock), so the last one to finish always sees the others and finalizes.
        referral = session.scalars(select(Referral).where(Referral.id == delivery.referral_id)
                                   .with_for_update()).one()
        session.refresh(delivery)
        if delivery.status != "sending":  # a duplicate check after the outcome was recorded
            return delivery.status, []
        if attempt_id is None:  # a held delivery's outcome closes its last attempt
            attempt_id = session.scalar(select(func.max(DeliveryAttempt.id))
                                        .where(DeliveryAttempt.delivery_id == delivery_id))
        session.execute(update(DeliveryAttempt).where(DeliveryAttempt.id == attempt_id)
                        .values(finished_at=None if outcome == "held" else now,
                                outcome=outcome, error=error))
        delivery.updated_at = now
        delivery.next_attempt_at = delivery.check_at = None
        if sent.detail:
            delivery.detail = {**(delivery.detail or {}), **sent.detail}
        if sent.reference:
            delivery.reference = sent.reference
        messages = []
        if outcome == "held":
            # The provider has it: no worker holds a claim; the scheduler asks
            # the provider again at check_at (check_delivery).
            delivery.claimed_at, delivery.last_error = None, None
            delivery.check_at = now + dt.timedelta(seconds=p.settings.fax_check_seconds)
            states.record_event(session, delivery.referral_id, "delivery_queued", actor=WORKER,
                                delivery_id=delivery.id,
                                reason=f"{delivery.channel}: queued with the provider as "
                                       f"{delivery.reference} (attempt {delivery.attempts})")
        elif outcome == "sent":
            delivery.status, delivery.sent_at = "sent", now
            delivery.last_error = None
            if delivery.document in FOR_THE_REFERRER and delivery.target:
                session.execute(update(Referral).where(
                    Referral.id == delivery.referral_id, Referral.referrer_notified_at.is_(None))
                    .values(referrer_notified_at=now)
                    .execution_options(synchronize_session=False))
            states.record_event(session, delivery.referral_id, "delivery_sent", actor=WORKER,
                                delivery_id=delivery.id,
                                reason=f"{delivery.channel}: sent (attempt {delivery.attempts})"
                                       + confirmation_text(delivery.detail))
        elif outcome == "cancelled":
            delivery.status, delivery.last_error = "cancelled", error
            states.record_event(session, delivery.referral_id, "delivery_cancelled",
                                actor=WORKER, delivery_id=delivery.id,
                                reason=f"{delivery.channel}: {error}")
        elif outcome == "transient" and _may_retry(delivery, now):
            wait = backoff_seconds(p.settings, delivery.attempts)
            if delivery.retry_until is not None:  # the last attempt at the window's end
                wait = min(wait, max(0.0, (delivery.retry_until - now).total_seconds()))
            delivery.status, delivery.last_error = "retrying", error
            delivery.next_attempt_at = now + dt.timedelta(seconds=wait)
            messages.append(outbox.enqueue(session, outbox.DELIVER, {"delivery_id": delivery.id},
                                           available_at=delivery.next_attempt_at))
            states.record_event(session, delivery.referral_id, "retry", actor=WORKER,
                                delivery_id=delivery.id,
                                reason=f"{delivery.channel}: attempt {delivery.attempts} failed "
                                       f"({error}); retrying in {wait:.1f} s")
        else:
            delivery.status, delivery.last_error = "failed", error
            why = (f"gave up after {delivery.attempts} attempts"
                   + (" (its retry window ended)" if delivery.retry_until is not None
                      and now >= delivery.retry_until else "")
                   if outcome == "transient" else "permanent error")
            states.record_event(session, delivery.referral_id, "delivery_failed", actor=WORKER,
                                delivery_id=delivery.id,
                                reason=f"{delivery.channel}: {why}: {error}")
            # Ids and the channel only: the error text stays on the timeline
            # (a server's answer can quote an address).
            log.warning("delivery %s of referral %s (%s) failed: %s; staff can correct and "
                        "retry it", delivery.id, delivery.referral_id, delivery.channel, why)
        session.flush()
        if delivery.status in ENDED:
            finalize_in(session, referral)
        return delivery.status, [m.id for m in messages]


def confirmation_text(detail: dict | None) -> str:
    """The provider's confirmation in words: "; 2 pages in 48 s, remote id ..."."""
    if not detail:
        return ""
    parts = []
    if detail.get("pages_sent") is not None:
        pages = detail["pages_sent"]
        parts.append(f"{pages} page{'' if pages == 1 else 's'}"
                     + (f" in {detail['duration_s']:.0f} s" if detail.get("duration_s") else ""))
    if detail.get("remote_id"):
        parts.append(f"remote id {detail['remote_id']}")
    if detail.get("job_id"):
        parts.append(f"job {detail['job_id']}")
    return ("; " + ", ".join(parts)) if parts else ""


# -- check_delivery: follow what a provider holds --------------------------------

def check_delivery(p: Pipeline, delivery_id: str) -> str | None:
    """Ask the provider where a held delivery (a queued fax job) has got, and
    record it: still queued (the scheduler asks again at ``check_at``), sent
    (with the server's confirmation), or failed (retried, or failed by the
    server's reason). A held delivery of a cancelled referral is stopped with
    the provider. A duplicate check records nothing twice (the outcome applies
    only to a delivery still ``sending``)."""
    with p.db.session() as session:
        held = session.scalars(select(Delivery).where(
            Delivery.id == delivery_id, Delivery.status == "sending",
            Delivery.claimed_at.is_(None), Delivery.reference.is_not(None))).one_or_none()
        if held is None:
            return session.scalar(select(Delivery.status).where(Delivery.id == delivery_id))
        reference, channel_name = held.reference, held.channel
        cancelled = session.scalar(select(Referral.status).where(
            Referral.id == held.referral_id)) == states.CANCELLED
    checked = _check(p.channels.get(channel_name), channel_name, reference, cancel=cancelled)
    if checked is None:  # still with the provider
        return "sending"
    status, message = _record_until_done(p, delivery_id, None, checked)
    p.relay(message)
    return status


def due_checks(p: Pipeline, session, now: dt.datetime) -> list[str]:
    """Held deliveries due a check: each is given its next check time now (so
    one message goes per round) and returned for a ``check_delivery`` message."""
    wait = dt.timedelta(seconds=max(p.settings.fax_check_seconds,
                                    p.settings.delivery_lease_seconds))
    return list(session.scalars(
        update(Delivery)
        .where(Delivery.status == "sending", Delivery.claimed_at.is_(None),
               Delivery.check_at.is_not(None), Delivery.check_at <= now)
        .values(check_at=now + wait)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)).all())


def _check(channel, channel_name: str, reference: str, *, cancel: bool) -> Outcome | None:
    """The provider's answer as an Outcome, or ``None`` while it still holds it."""
    from refflow.plugins.channels.base import ChannelError

    try:
        if channel is None:
            raise ChannelError(f"no channel named {channel_name!r} is installed")
        status = channel.check(reference)
        if cancel and not status.finished and channel.can_cancel():
            channel.cancel(reference)
            return Outcome("cancelled", "the referral was cancelled: the provider's job "
                                        f"{reference} was stopped before it was sent")
    except ChannelError as exc:
        # The provider could not be asked (it is away): ask again at the next check.
        log.warning("delivery check through %s failed (%s); checking again later",
                    channel_name, type(exc).__name__)
        return None
    if not status.finished:
        return None
    detail = _json_detail(status.detail)
    if status.state == "sent":
        return Outcome("sent", detail=detail)
    error = status.error
    permanent = getattr(error, "permanent", True)
    message = getattr(error, "message", None) or "the provider reported the fax as failed"
    if cancel:
        return Outcome("cancelled", f"the referral was cancelled; {message}", detail=detail)
    return Outcome("permanent" if permanent else "transient", message[:500], detail=detail)


def _may_retry(delivery: Delivery, now: dt.datetime) -> bool:
    """A transient error is retried within the delivery's retry window (and
    the attempts backstop)."""
    return delivery.attempts < delivery.max_attempts and (
        delivery.retry_until is None or now < delivery.retry_until)


# -- finalize -------------------------------------------------------------------

def finalize(p: Pipeline, referral_id: str) -> str | None:
    """delivering → completed (all sent) or failed (any failed), once every
    delivery has ended. Safe to call any number of times."""
    with p.db.session() as session:
        row = session.scalars(select(Referral).where(Referral.id == referral_id)
                              .with_for_update()).one_or_none()
        return finalize_in(session, row) if row is not None else None


def finalize_in(session, row: Referral) -> str:
    # Only a delivering referral moves: a rejected one's letter never changes its status.
    if row.status != states.DELIVERING:
        return row.status
    counts = dict(session.execute(select(Delivery.status, func.count())
                                  .where(Delivery.referral_id == row.id)
                                  .group_by(Delivery.status)).all())
    if set(counts) - ENDED:
        return row.status
    failed, total = counts.get("failed", 0), sum(counts.values())
    in_doubt = counts.get("in_doubt", 0)
    try:
        if failed or in_doubt:
            why = [f"{failed} of {total} deliveries failed"] if failed else []
            if in_doubt:
                why.append(f"{in_doubt} of {total} may have been sent (staff to confirm or "
                           "send again)")
            states.transition(session, row, states.FAILED, actor=WORKER, reason="; ".join(why))
        else:
            states.transition(session, row, states.COMPLETED, actor=WORKER,
                              reason=f"all {total} deliveries sent")
    except IllegalTransition:
        pass  # a concurrent finalize got there first
    return row.status
