"""The workflow core: what each pipeline step does to the database.

Celery tasks (refflow.workers.tasks) are thin wrappers around these functions;
the staff API calls the review and retry ones. Every step is idempotent: it
checks the state it expects with a conditional update and does nothing when
another run got there first, so a task delivered twice never acts twice.

    build_plan ─▶ render_documents ─▶ deliver (one per delivery) ─▶ finalize

Each step commits its change together with the outbox message for the next
step, then asks the relay to publish (the scheduler's relay is the backstop).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import func, insert, select, text, update

from refflow.config import Settings
from refflow.db.models import (
    AuditEntry,
    Delivery,
    DeliveryAttempt,
    Document,
    Plan,
    Referral,
    new_id,
    utcnow,
)
from refflow.db.session import Database, database_for
from refflow.intake.schemas import Referral as ReferralIn
from refflow.pipeline import delivery_sql, outbox, plan_sql
from refflow.pipeline.outbox import Publisher
from refflow.referrals import states
from refflow.referrals.states import IllegalTransition

log = logging.getLogger("refflow.pipeline")

BUILD_PLAN = "refflow.build_plan"
RENDER = "refflow.render_documents"
DELIVER = "refflow.deliver"
FINALIZE = "refflow.finalize"

FAX_DOCUMENT = "fax.tiff"  # refflow.documents.render.FAX, without importing the renderers
CONTENT_TYPES = {"handout.pdf": "application/pdf", "summary.pdf": "application/pdf",
                 FAX_DOCUMENT: "image/tiff"}
ENDED = frozenset({"sent", "failed"})
WORKER = "worker"


class StepError(Exception):
    """A staff action that does not apply (e.g. retrying a delivery already sent)."""


@dataclass
class Pipeline:
    """Everything a step needs: settings, database, plugins, channels, the broker."""

    settings: Settings
    publish: Publisher | None = None
    db: Database = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.db is None:
            self.db = database_for(self.settings)

    @cached_property
    def pm(self):
        from refflow.plugins.manager import get_plugin_manager

        return get_plugin_manager(self.settings)

    @cached_property
    def channels(self) -> dict:
        from refflow.plugins.manager import channels

        return channels(self.pm, self.settings)

    @cached_property
    def documents_needed(self) -> dict[str, list[str]]:
        """Channel name → the documents it asks for besides its delivery's own."""
        return {name: sorted(getattr(channel, "documents", ()) or ())
                for name, channel in self.channels.items()}

    @cached_property
    def clinic(self):
        from refflow.documents.clinic import ClinicInfo

        return ClinicInfo.from_settings(self.settings)

    def relay(self, ids: list[int] | None = None) -> int:
        """Publish what the last commit queued (no-op without a broker): the
        messages ``ids`` when given, else every due one."""
        if self.publish is None:
            return 0
        return outbox.relay(self.db, self.publish, ids=ids)


def referral_input(row: Referral) -> ReferralIn:
    return ReferralIn.model_validate(row.payload)


def recomputable(session) -> None:
    """Commit this transaction without waiting for the WAL flush (PostgreSQL).

    Only for work that can be done again: if the database crashes in the
    window, the referral is found in its earlier state and re-driven. Never
    used for intake (202 promises the referral is stored) nor for recording a
    delivery as sent.
    """
    if session.bind.dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))


# -- build_plan -----------------------------------------------------------------

def plan_and_render(p: Pipeline, referral_id: str) -> str | None:
    """build_plan, then — when the plan is released — render_documents in the
    same worker: the documents are rendered from the plan in memory, and the
    plan, its documents and deliveries commit in one transaction (the timeline
    still shows planning → planned → delivering), saving a broker round trip,
    re-reading the referral and plan, and a transaction."""
    return _build_plan(p, referral_id, inline_render=True)


def build_plan(p: Pipeline, referral_id: str) -> str | None:
    """received → planning → planned | needs_review. Returns the new status."""
    return _build_plan(p, referral_id, inline_render=False)


def _build_plan(p: Pipeline, referral_id: str, *, inline_render: bool) -> str | None:
    from refflow.plugins.manager import plan_for

    postgres = p.db.engine.dialect.name == "postgresql"
    start = _start_planning_pg if postgres else _start_planning
    status, payload, received_on, problems, request_id = start(p, referral_id)
    if status is None:
        log.warning("build_plan: no referral %s", referral_id)
        return None
    if status != states.PLANNING:
        return status  # already planned (a duplicate message): nothing to do

    referral = ReferralIn.model_validate(payload)
    plan = plan_for(referral, as_of=received_on, pm=p.pm)
    intake_flags = [
        {"code": pr["code"], "severity": pr["severity"],
         "message": pr["message"], "source": pr.get("source", "intake")}
        for pr in problems if pr.get("severity") in {"needs_review", "caution"}
    ]
    # an intake rule and the engine may raise the same flag: the plan lists it once
    planned_codes = {f.get("code") for f in plan.get("flags", [])}
    intake_flags = [f for f in intake_flags if f["code"] not in planned_codes]
    if intake_flags:
        plan = dict(plan)
        plan["flags"] = list(plan.get("flags", [])) + intake_flags
        if any(f["severity"] == "needs_review" for f in intake_flags) \
                and plan["decision"] == "release":
            plan["decision"] = "review"
    held = plan["decision"] == "review"
    routing = None
    if not held:
        from refflow.plugins.manager import routes_for

        routing = routes_for(referral, plan, p.pm)
        if routing[1] and plan["decision"] == "release":
            # A routing plugin failed: staff decide before anything is sent
            # where the clinic's rules could not say (on approval the default
            # routing applies, and the failure stays on the timeline).
            plan = dict(plan, decision="review",
                        flags=list(plan.get("flags", [])) + [f.as_flag() for f in routing[1]])
            held = True
    rendered = _render(p, referral, plan, routing) if inline_render and not held else None
    if postgres and rendered is not None:
        committed = _commit_rendered_pg(p, referral_id, request_id, plan, *rendered)
        if committed.moved or committed.status != states.PLANNING:
            return states.DELIVERING if committed.moved else committed.status
        # planning with deliveries from an earlier run: the ORM path merges with them

    with p.db.session() as session:
        row = session.get(Referral, referral_id)
        if row.status != states.PLANNING:
            return row.status  # cancelled meanwhile, or another run finished first
        recomputable(session)
        existing = session.scalar(select(Plan).where(Plan.referral_id == referral_id))
        if existing is None:
            session.add(Plan(referral_id=referral_id, decision=plan["decision"],
                             engine_version=str(plan.get("engine_version", "")), body=plan))
        else:
            existing.decision, existing.body = plan["decision"], plan
            existing.engine_version = str(plan.get("engine_version", ""))
        row.flagged = row.flagged or needs_staff(plan)
        for flag in plan.get("flags", []):
            if flag.get("code") == "plugin_failed":
                states.record_event(session, referral_id, "plugin_failed", actor=WORKER,
                                    reason=flag["message"])
        if held:
            codes = sorted({f["code"] for f in plan.get("flags", [])
                            if f.get("severity") == "needs_review"})
            states.transition(session, row, states.NEEDS_REVIEW, actor=WORKER,
                              reason="held for a clinician: " + ", ".join(codes))
        else:
            states.transition(session, row, states.PLANNED, actor=WORKER,
                              reason=f"plan built ({plan['decision']})")
            if rendered is None:
                outbox.enqueue(session, RENDER, {"referral_id": referral_id})
            else:
                _queue_deliveries(p, session, row, *rendered)
        status = row.status
    if not held:
        p.relay()
    return status


START_PLANNING = f"""
WITH moved AS (
    UPDATE referrals SET status = '{states.PLANNING}', updated_at = %(now)s
     WHERE id = %(id)s AND status = '{states.RECEIVED}'
 RETURNING id
), event AS (
    INSERT INTO referral_events (referral_id, at, actor, kind, from_status, to_status, reason)
    SELECT id, %(now)s, %(actor)s, 'status', '{states.RECEIVED}', '{states.PLANNING}',
           'building the exercise plan' FROM moved
)
SELECT r.status, r.payload, r.received_on, r.intake_problems, r.request_id,
       (SELECT count(*) FROM moved)
  FROM referrals AS r WHERE r.id = %(id)s
"""


def _start_planning(p: Pipeline, referral_id: str):
    """received → planning; returns (status, payload, received_on, intake problems,
    request id)."""
    with p.db.session() as session:
        row = session.get(Referral, referral_id)
        if row is None:
            return None, None, None, None, None
        if row.status == states.RECEIVED:
            recomputable(session)
            states.transition(session, row, states.PLANNING, actor=WORKER,
                              reason="building the exercise plan")
        return row.status, row.payload, row.received_on, row.intake_problems or [], \
            row.request_id


def _start_planning_pg(p: Pipeline, referral_id: str):
    """``_start_planning`` as one statement (the conditional UPDATE, its timeline
    event and the read), committed without waiting for the WAL flush."""
    with p.db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        with raw.transaction(), raw.pipeline():
            raw.execute("SET LOCAL synchronous_commit TO OFF")
            cur = raw.execute(START_PLANNING, {"id": referral_id, "now": utcnow(),
                                               "actor": WORKER})
        row = cur.fetchone()
    if row is None:
        return None, None, None, None, None
    status, payload, received_on, problems, request_id, moved = row
    if moved:
        status = states.PLANNING
        states.notify_status_changed([(referral_id, states.RECEIVED, states.PLANNING)])
    return status, payload, received_on, problems or [], request_id


# -- render_documents -----------------------------------------------------------

def render_documents(p: Pipeline, referral_id: str) -> str | None:
    """planned → delivering: render the documents, create one delivery per route."""
    with p.db.session() as session:
        row = session.get(Referral, referral_id)
        if row is None or row.status != states.PLANNED:
            return row.status if row else None
        plan_row = session.scalar(select(Plan).where(Plan.referral_id == referral_id))
        plan, payload = plan_row.body, row.payload

    rendered = _render(p, ReferralIn.model_validate(payload), plan)

    with p.db.session() as session:
        row = session.get(Referral, referral_id)
        if row.status != states.PLANNED:
            return row.status
        recomputable(session)
        _queue_deliveries(p, session, row, *rendered)
        status = row.status
    p.relay()
    return status


def needs_staff(plan: dict) -> bool:
    """Whether staff should see this referral among the flagged ones: its plan
    is held for review, or carries a ``needs_review`` flag that a released
    decision does not wait for (a red flag's ``do_not_exercise`` goes to the
    referrer at once, and staff must know of it)."""
    return plan.get("decision") == "review" or any(
        f.get("severity") == "needs_review" for f in plan.get("flags", []))


def _render(p: Pipeline, referral: ReferralIn, plan: dict, routing: tuple | None = None):
    """The documents and the routes for them (no database); ``routing``: the
    (routes, failures) ``routes_for`` already gave for this plan."""
    from refflow.documents import render_all
    from refflow.plugins.manager import routes_for

    docs = render_all(referral, plan, p.clinic, resolution=p.settings.fax_resolution,
                      paper=p.settings.paper, fax_lanes=p.settings.fax_lanes or None)
    routes, failures = routing if routing is not None else routes_for(referral, plan, p.pm)
    if plan.get("decision") == "do_not_exercise":
        # A red flag: the referrer and the chart hear about it; the patient gets
        # no plan until a clinician has seen them.
        routes = [r for r in routes if r["document"] != "handout.pdf"]
    return docs, routes, failures


def _queue_deliveries(p: Pipeline, session, row: Referral, docs: dict[str, bytes],
                      routes: list[dict], failures: list) -> None:
    """planned → delivering in ``session``: store the documents, create the
    deliveries and queue one ``deliver`` message each (or ``finalize``)."""
    _store_documents(session, row.id, docs)
    for failure in failures:
        states.record_event(session, row.id, "plugin_failed", actor=WORKER,
                            reason=failure.message)
    created = _create_deliveries(p, session, row, routes)
    states.transition(session, row, states.DELIVERING, actor=WORKER,
                      reason=f"documents rendered; {len(created)} deliveries queued")
    for delivery in created:
        outbox.enqueue(session, DELIVER, outbox.message_args(delivery_id=delivery.id,
                                                             request_id=row.request_id))
    if not created:
        outbox.enqueue(session, FINALIZE, outbox.message_args(referral_id=row.id,
                                                              request_id=row.request_id))


def _store_documents(session, referral_id: str, docs: dict[str, bytes]) -> None:
    existing = {d.name: d for d in session.scalars(
        select(Document).where(Document.referral_id == referral_id))}
    for name, content in docs.items():
        fields = _document_fields(name, content)
        doc = existing.get(name)
        if doc is None:
            session.add(Document(referral_id=referral_id, name=name, content=content, **fields))
        else:
            doc.content, doc.sha256 = content, fields["sha256"]
            doc.size, doc.pages = fields["size"], fields["pages"]


def _document_fields(name: str, content: bytes) -> dict:
    """A document's columns besides its name and bytes."""
    return {"content_type": CONTENT_TYPES.get(name, "application/octet-stream"),
            "sha256": hashlib.sha256(content).hexdigest(), "size": len(content),
            "pages": _page_count(name, content)}


def _page_count(name: str, content: bytes) -> int | None:
    """Pages of a TIFF: the length of its IFD chain (no image decoding)."""
    if not name.endswith(".tiff"):
        return None
    import struct

    order = {b"II": "<", b"MM": ">"}.get(content[:2])
    if order is None or len(content) < 8:
        return None
    (offset,) = struct.unpack_from(order + "I", content, 4)
    pages, seen = 0, set()
    while offset and offset not in seen and offset + 2 <= len(content):
        seen.add(offset)
        (entries,) = struct.unpack_from(order + "H", content, offset)
        end = offset + 2 + 12 * entries
        if end + 4 > len(content):
            break
        pages += 1
        (offset,) = struct.unpack_from(order + "I", content, end)
    return pages


def _create_deliveries(p: Pipeline, session, row: Referral, routes: list[dict]) -> list[Delivery]:
    existing = {(d.channel, d.document): d for d in session.scalars(
        select(Delivery).where(Delivery.referral_id == row.id))}
    created = []
    for route in routes:
        key = (route["channel"], route["document"])
        if key in existing:
            continue
        delivery = Delivery(referral_id=row.id, max_attempts=p.settings.delivery_max_attempts,
                            **_delivery_fields(p, route))
        session.add(delivery)
        existing[key] = delivery
        if delivery.status == "pending":
            created.append(delivery)
        else:
            states.record_event(session, row.id, "delivery_failed", actor=WORKER,
                                reason=f"{delivery.channel}: {delivery.last_error}")
    session.flush()
    return created


def _delivery_fields(p: Pipeline, route: dict) -> dict:
    """A route's delivery: pending to the target its channel validated, or failed
    with the reason (no such channel, a target the channel refuses)."""
    fields = {"channel": route["channel"], "document": route["document"],
              "target": route["target"], "status": "pending", "last_error": None}
    channel = p.channels.get(route["channel"])
    if channel is None:
        fields["status"] = "failed"
        fields["last_error"] = f"no channel named {route['channel']!r} is installed"
        return fields
    try:
        fields["target"] = channel.validate_target(route["target"])
    except Exception as exc:  # noqa: BLE001 - a bad target fails this delivery only
        fields["status"] = "failed"
        fields["last_error"] = _safe_error(exc, "the delivery target is not valid")
    return fields


def _commit_rendered_pg(p: Pipeline, referral_id: str, request_id: str | None, plan: dict,
                        docs: dict[str, bytes], routes: list[dict], failures: list):
    """What the ORM path below commits for a released, rendered plan — plan,
    documents, deliveries, timeline and outbox messages — as one statement
    (``plan_sql``), then the status hooks and the relay of its messages."""
    documents = [{"id": new_id(), "name": name, "content": content,
                  **_document_fields(name, content)} for name, content in docs.items()]
    events = [("plugin_failed", None, None, flag["message"]) for flag in plan.get("flags", [])
              if flag.get("code") == "plugin_failed"]
    events.append(("status", states.PLANNING, states.PLANNED,
                   f"plan built ({plan['decision']})"))
    events.extend(("plugin_failed", None, None, failure.message) for failure in failures)
    deliveries, seen = [], set()
    for route in routes:
        key = (route["channel"], route["document"])
        if key in seen:
            continue
        seen.add(key)
        fields = _delivery_fields(p, route)
        deliveries.append({"id": new_id(), "max_attempts": p.settings.delivery_max_attempts,
                           **fields})
        if fields["status"] != "pending":
            events.append(("delivery_failed", None, None,
                           f"{fields['channel']}: {fields['last_error']}"))
    pending = [d["id"] for d in deliveries if d["status"] == "pending"]
    events.append(("status", states.PLANNED, states.DELIVERING,
                   f"documents rendered; {len(pending)} deliveries queued"))
    messages = [(DELIVER, outbox.message_args(delivery_id=d, request_id=request_id))
                for d in pending] or [
        (FINALIZE, outbox.message_args(referral_id=referral_id, request_id=request_id))]
    committed = plan_sql.commit_rendered(
        p.db, referral_id=referral_id, now=utcnow(), actor=WORKER, plan_id=new_id(), plan=plan,
        documents=documents, deliveries=deliveries, events=events, messages=messages,
        flagged=needs_staff(plan))
    if committed.moved:
        states.notify_status_changed([(referral_id, states.PLANNING, states.PLANNED),
                                      (referral_id, states.PLANNED, states.DELIVERING)])
        p.relay(committed.outbox_ids)
    return committed


def _safe_error(exc: Exception, fallback: str) -> str:
    from refflow.plugins.channels.base import ChannelError

    if isinstance(exc, ChannelError):
        return exc.message[:500]
    return f"{fallback} ({type(exc).__name__})"


# -- deliver --------------------------------------------------------------------

def deliver(p: Pipeline, delivery_id: str) -> str | None:
    """Claim the delivery (pending/retrying → sending, by exactly one worker), send
    it through its channel, record the outcome. Returns the delivery status."""
    from refflow.plugins.channels.base import Delivery as ChannelDelivery

    if p.db.engine.dialect.name == "postgresql":
        return _deliver_pg(p, delivery_id)
    now = utcnow()
    with p.db.session() as session:
        delivery = session.scalars(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status.in_(("pending", "retrying")),
                   (Delivery.next_attempt_at.is_(None)) | (Delivery.next_attempt_at <= now))
            .values(status="sending", attempts=Delivery.attempts + 1, claimed_at=now,
                    updated_at=now)
            .returning(Delivery)
            .execution_options(synchronize_session=False)
        ).one_or_none()
        if delivery is None:
            # sent, failed, not due, gone, or another worker holds it
            return session.scalar(select(Delivery.status).where(Delivery.id == delivery_id))
        referral_status, payload = session.execute(
            select(Referral.status, Referral.payload).where(Referral.id == delivery.referral_id)
        ).one()
        if referral_status != states.DELIVERING:
            delivery.status = "pending"  # cancelled or not ours to send now
            delivery.attempts -= 1
            return delivery.status
        attempt_id = session.execute(
            insert(DeliveryAttempt).values(delivery_id=delivery.id, number=delivery.attempts,
                                           started_at=now, outcome="sending")
            .returning(DeliveryAttempt.id)).scalar_one()
        channel = p.channels.get(delivery.channel)
        needs = set(getattr(channel, "documents", ()) or ()) | {delivery.document}
        documents = dict(session.execute(
            select(Document.name, Document.content).where(
                Document.referral_id == delivery.referral_id, Document.name.in_(needs))).all())
        request = ChannelDelivery(
            id=delivery.id, referral_id=delivery.referral_id, channel=delivery.channel,
            target=delivery.target, documents=documents, subject=_subject(p, delivery),
            recipient_name=_recipient_name(payload, delivery), attempt=delivery.attempts)

    outcome, error, reference = _send(channel, request)
    status = _record_outcome(p, delivery_id, attempt_id, outcome, error, reference)
    if status == "retrying":
        p.relay()  # publishes the retry when it is due now (backoff 0); else the scheduler
    return status


def _send(channel, request) -> tuple[str, str | None, str | None]:
    """Call the channel; returns (outcome, error, reference)."""
    from refflow.plugins.channels.base import ChannelError

    if channel is None:
        return "permanent", f"no channel named {request.channel!r} is installed", None
    try:
        result = channel.send(request)
    except ChannelError as exc:
        return ("permanent" if exc.permanent else "transient"), exc.message[:500], None
    except Exception as exc:  # noqa: BLE001 - a plugin bug: treat as permanent, tell staff
        error = f"channel {request.channel!r} raised {type(exc).__name__}"
        log.error("delivery %s: %s", request.id, error)
        return "permanent", error, None
    return "sent", None, str(getattr(result, "reference", "") or "")[:200]


def _readdress_fax(p: Pipeline, session, row: Referral, fax_number: str) -> None:
    """Render the fax again with its cover page (and summary) addressed to the
    number staff corrected, so the office that receives it is the one named."""
    from refflow.documents import render_fax

    plan = session.scalar(select(Plan).where(Plan.referral_id == row.id))
    referral = referral_input(row)
    referral = referral.model_copy(
        update={"referrer": referral.referrer.model_copy(update={"fax": fax_number})})
    _store_documents(session, row.id, {FAX_DOCUMENT: render_fax(
        referral, plan.body, p.clinic, resolution=p.settings.fax_resolution,
        paper=p.settings.paper, fax_lanes=p.settings.fax_lanes or None)})


def _log_failed(delivery_id: str, referral_id: str, channel: str, why: str) -> None:
    """An operator watching the logs hears of a delivery that needs staff.
    Ids and the channel only: the error text stays on the referral's timeline
    (a server's answer can quote an address)."""
    log.warning("delivery %s of referral %s (%s) failed: %s; staff can correct and retry it",
                delivery_id, referral_id, channel, why)


def _deliver_pg(p: Pipeline, delivery_id: str) -> str | None:
    """``deliver`` on PostgreSQL: the same steps as driver-level statements
    (see ``delivery_sql``): one to claim (returning the documents too), one
    transaction for the outcome."""
    from refflow.plugins.channels.base import Delivery as ChannelDelivery

    claim, current = delivery_sql.claim(p.db, delivery_id, utcnow(), p.documents_needed)
    if claim is None:
        return current  # sent, failed, not due, gone, another worker holds it, or not delivering
    channel = p.channels.get(claim.channel)
    if claim.document == "handout.pdf":
        subject = f"Your exercise plan from {p.clinic.name}"
        recipient = f"{claim.given_name or ''} {claim.family_name or ''}".strip() or None
    else:
        subject = f"Referral plan summary from {p.clinic.name}"
        recipient = claim.referrer_name
    request = ChannelDelivery(
        id=delivery_id, referral_id=claim.referral_id, channel=claim.channel,
        target=claim.target, documents=claim.documents,
        subject=subject, recipient_name=recipient, attempt=claim.attempts)
    outcome, error, reference = _send(channel, request)

    now, next_at = utcnow(), None
    if outcome == "sent":
        status, kind = "sent", "delivery_sent"
        reason = f"{claim.channel}: sent (attempt {claim.attempts})"
    elif outcome == "transient" and claim.attempts < claim.max_attempts:
        wait = backoff_seconds(p.settings, claim.attempts)
        status, kind, next_at = "retrying", "retry", now + dt.timedelta(seconds=wait)
        reason = (f"{claim.channel}: attempt {claim.attempts} failed ({error}); "
                  f"retrying in {wait:.1f} s")
    else:
        why = f"gave up after {claim.attempts} attempts" if outcome == "transient" \
            else "permanent error"
        status, kind = "failed", "delivery_failed"
        reason = f"{claim.channel}: {why}: {error}"
        _log_failed(delivery_id, claim.referral_id, claim.channel, why)
    finished = delivery_sql.record_outcome(
        p.db, delivery_id=delivery_id, referral_id=claim.referral_id,
        attempt_id=claim.attempt_id, outcome=outcome, status=status, error=error,
        reference=reference, now=now, next_at=next_at, retry_task=DELIVER, kind=kind,
        reason=reason, actor=WORKER)
    if finished is not None:
        states.notify_status_changed([(claim.referral_id, states.DELIVERING, finished)])
    if status == "retrying":
        p.relay()  # publishes the retry when it is due now (backoff 0); else the scheduler
    return status


def _subject(p: Pipeline, delivery: Delivery) -> str:
    if delivery.document == "handout.pdf":
        return f"Your exercise plan from {p.clinic.name}"
    return f"Referral plan summary from {p.clinic.name}"


def _recipient_name(payload: dict, delivery: Delivery) -> str | None:
    if delivery.document == "handout.pdf":
        patient = payload.get("patient", {})
        return f"{patient.get('given_name', '')} {patient.get('family_name', '')}".strip() or None
    return payload.get("referrer", {}).get("name")


def backoff_seconds(settings: Settings, attempt: int, rng=random) -> float:
    """Exponential backoff with full jitter between 50 % and 100 % of the step."""
    step = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempt - 1))
    return step * (0.5 + rng.random() / 2)


def _record_outcome(p: Pipeline, delivery_id: str, attempt_id: int, outcome: str,
                    error: str | None, reference: str | None) -> str:
    now = utcnow()
    with p.db.session() as session:
        delivery = session.get(Delivery, delivery_id)
        # Outcomes of one referral's deliveries are recorded one at a time (row
        # lock), so the last one to finish always sees the others and finalizes.
        referral = session.scalars(select(Referral).where(Referral.id == delivery.referral_id)
                                   .with_for_update()).one()
        session.execute(update(DeliveryAttempt).where(DeliveryAttempt.id == attempt_id)
                        .values(finished_at=now, outcome=outcome, error=error))
        delivery.updated_at = now
        delivery.next_attempt_at = None  # only a retrying delivery has a next attempt
        if outcome == "sent":
            delivery.status, delivery.sent_at, delivery.reference = "sent", now, reference
            delivery.last_error = None
            states.record_event(session, delivery.referral_id, "delivery_sent", actor=WORKER,
                                reason=f"{delivery.channel}: sent (attempt {delivery.attempts})")
        elif outcome == "transient" and delivery.attempts < delivery.max_attempts:
            wait = backoff_seconds(p.settings, delivery.attempts)
            delivery.status, delivery.last_error = "retrying", error
            delivery.next_attempt_at = now + dt.timedelta(seconds=wait)
            outbox.enqueue(session, DELIVER, {"delivery_id": delivery.id},
                           available_at=delivery.next_attempt_at)
            states.record_event(session, delivery.referral_id, "retry", actor=WORKER,
                                reason=f"{delivery.channel}: attempt {delivery.attempts} failed "
                                       f"({error}); retrying in {wait:.1f} s")
        else:
            delivery.status, delivery.last_error = "failed", error
            why = f"gave up after {delivery.attempts} attempts" if outcome == "transient" \
                else "permanent error"
            states.record_event(session, delivery.referral_id, "delivery_failed", actor=WORKER,
                                reason=f"{delivery.channel}: {why}: {error}")
            _log_failed(delivery.id, delivery.referral_id, delivery.channel, why)
        if delivery.status in ENDED:
            session.flush()
            _finalize_in(session, referral)
        return delivery.status


# -- finalize -------------------------------------------------------------------

def finalize(p: Pipeline, referral_id: str) -> str | None:
    """delivering → completed (all sent) or failed (any failed), once every
    delivery has ended. Safe to call any number of times."""
    with p.db.session() as session:
        row = session.get(Referral, referral_id)
        return _finalize_in(session, row) if row is not None else None


def _finalize_in(session, row: Referral) -> str:
    referral_id = row.id
    if row.status != states.DELIVERING:
        return row.status
    counts = dict(session.execute(select(Delivery.status, func.count())
                                  .where(Delivery.referral_id == referral_id)
                                  .group_by(Delivery.status)).all())
    if set(counts) - ENDED:
        return row.status
    failed, total = counts.get("failed", 0), sum(counts.values())
    try:
        if failed:
            states.transition(session, row, states.FAILED, actor=WORKER,
                              reason=f"{failed} of {total} deliveries failed")
        else:
            states.transition(session, row, states.COMPLETED, actor=WORKER,
                              reason=f"all {total} deliveries sent")
    except IllegalTransition:
        pass  # a concurrent finalize got there first
    return row.status


# -- staff actions --------------------------------------------------------------

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


def approve(p: Pipeline, referral_id: str, *, actor: str, note: str | None = None) -> str:
    """needs_review → planned, with who and when; delivery continues.

    The approved plan is released: its decision becomes ``release`` and it
    records ``approved`` (when), so the documents rendered next are the
    patient's plan and the referrer's released summary, not the draft that
    was held. Its flags stay, as what the clinician saw."""
    with p.db.session() as session:
        _review(session, referral_id, states.PLANNED, actor=actor, verb="approved",
                action="plan.approve", note=note)
        plan = session.scalar(select(Plan).where(Plan.referral_id == referral_id))
        now = utcnow()
        plan.approved_by, plan.approved_at = actor, now
        plan.decision = "release"
        plan.body = {**plan.body, "decision": "release", "approved": {"at": now.isoformat()}}
        outbox.enqueue(session, RENDER, {"referral_id": referral_id})
    p.relay()
    return states.PLANNED


def reject(p: Pipeline, referral_id: str, *, actor: str, note: str | None = None) -> str:
    """needs_review → rejected, with who, when and why."""
    with p.db.session() as session:
        _review(session, referral_id, states.REJECTED, actor=actor, verb="rejected",
                action="plan.reject", note=note)
    return states.REJECTED


def retry_delivery(p: Pipeline, delivery_id: str, *, actor: str,
                   target: str | None = None) -> Delivery:
    """Re-send one failed delivery (optionally to a corrected target). A delivery
    already sent is never sent again."""
    with p.db.session() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            raise LookupError(delivery_id)
        if delivery.status != "failed":
            raise StepError(f"only a failed delivery can be retried (this one is "
                            f"{delivery.status})")
        if target is not None:
            channel = p.channels.get(delivery.channel)
            if channel is None:
                raise StepError(f"no channel named {delivery.channel!r} is installed")
            try:
                target = channel.validate_target(target)
            except Exception as exc:  # noqa: BLE001
                raise StepError(_safe_error(exc, "the new target is not valid")) from None
            delivery.target = target
        row = session.get(Referral, delivery.referral_id)
        if target is not None and delivery.document == FAX_DOCUMENT:
            _readdress_fax(p, session, row, target)
        if row.status == states.FAILED:
            states.transition(session, row, states.DELIVERING, actor=actor,
                              reason=f"staff retry of the {delivery.channel} delivery"
                                     + (" to a corrected target" if target else ""))
        elif row.status != states.DELIVERING:
            raise StepError(f"a {row.status} referral's deliveries cannot be retried")
        delivery.status, delivery.next_attempt_at, delivery.updated_at = "pending", None, utcnow()
        delivery.max_attempts = delivery.attempts + p.settings.delivery_max_attempts
        states.record_event(session, row.id, "retry_requested", actor=actor,
                            reason=f"{delivery.channel}: staff asked to send again")
        session.add(AuditEntry(actor=actor, action="delivery.retry", referral_id=row.id,
                               detail=f"delivery {delivery.id}"
                                      + ("; target corrected" if target else "")))
        outbox.enqueue(session, DELIVER, {"delivery_id": delivery.id})
    p.relay()
    return delivery
