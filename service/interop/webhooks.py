"""Webhooks: a practice's systems hear what happened to its referrals without
asking, as events signed per Standard Webhooks (the ``standardwebhooks`` library).

- **Endpoints.** A practice registers URLs (https; http only to this machine,
  or on an embedded install), each with the event types it wants. Each has
  its own signing secret (``whsec_`` + 32 random bytes in base64, the
  Standard Webhooks form), shown once and stored sealed with the secret key.
- **Fan-out.** The referral timeline is the source: every new
  ``referral_events`` row of a kind in ``KINDS`` becomes one message per
  active endpoint of the referral's practice that admits its type
  (``fan_out``, run by the scheduler every round). The ``webhooks`` event
  cursor is locked while it moves, and a message's ``event_key``
  (``event:<id>``) is unique per endpoint, so two schedulers, or one run
  twice, never make two messages of one event.
- **Payloads** carry ids and status only: the referral id, the practice's own
  ``external_id``, statuses, the channel, links. Never a patient's name or any
  other patient data, never an error text (it can quote an address).
- **Sending** (``send``, the ``refflow.send_webhook`` task) claims the message
  (a conditional update: one sender at a time), signs the body with the
  message id as ``webhook-id`` and the time of the attempt, and POSTs it
  without following redirects. 2xx is sent; no answer, 408, 429 and 5xx are
  retried with the deliveries' backoff (``flow.backoff_seconds``) until
  ``webhook_retry_hours`` after the event; any other answer fails it. A
  sender that stopped mid-send loses its claim and the scheduler sends the
  message again (``redrive``): delivery is at least once, always with the
  same ``webhook-id``, which receivers use to drop duplicates.
- **Re-send** (``resend``): a practice, or staff, sends a message again, with
  the same ``webhook-id``; one attempt, retried like the first ones while the
  message's retry window lasts.

Messages of one referral are queued in timeline order, but a retry or two
workers can deliver them out of order: receivers order them by
``data.event_id`` (or ``timestamp``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import ipaddress
import json
import logging
import secrets
import uuid
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from refflow.accounts import sealing
from refflow.config import Settings
from refflow.db.models import (
    AuditEntry,
    Delivery,
    EventCursor,
    Practice,
    Referral,
    ReferralEvent,
    WebhookEndpoint,
    WebhookMessage,
    utcnow,
)
from refflow.intake.text import one_line
from refflow.pipeline import outbox
from refflow.pipeline.context import Pipeline
from refflow.pipeline.flow import backoff_seconds

log = logging.getLogger("refflow.webhooks")

# The event types, and the timeline kinds they are made from.
STATUS_CHANGED = "referral.status_changed"
DELIVERY_SENT = "delivery.sent"
DELIVERY_FAILED = "delivery.failed"
DELIVERY_CANCELLED = "delivery.cancelled"
EVENT_TYPES = {
    STATUS_CHANGED: "the referral's status changed (with the status before)",
    DELIVERY_SENT: "a delivery (the plan summary by fax, the handout by email, ...) was sent",
    DELIVERY_FAILED: "a delivery failed (out of retries, or refused); the clinic's staff are told",
    DELIVERY_CANCELLED: "a delivery was stopped before it was sent (the referral was cancelled)",
}
KINDS = {"status": STATUS_CHANGED, "delivery_sent": DELIVERY_SENT,
         "delivery_failed": DELIVERY_FAILED, "delivery_cancelled": DELIVERY_CANCELLED}
DELIVERY_STATUS = {DELIVERY_SENT: "sent", DELIVERY_FAILED: "failed",
                   DELIVERY_CANCELLED: "cancelled"}

CURSOR = "webhooks"  # the fan-out's row in event_cursors
SECRET_PURPOSE = "webhook secret"  # the sealing key's purpose
SECRET_BYTES = 32
MAX_ENDPOINTS = 10  # active endpoints per practice
BATCH = 500  # timeline events per fan-out round
LOG_LIMIT = 100  # messages an endpoint's delivery log shows
# A gap in the timeline's ids is an event whose transaction has not committed
# yet (or rolled back): the cursor waits for it this long after the next event.
GAP_SETTLE = dt.timedelta(seconds=60)
SEND_TIMEOUT = (5.0, 15.0)  # seconds: connecting, then waiting for the answer's headers
# A message is pending, sending, retrying, sent, failed, or cancelled (its
# endpoint was disabled before it went); these two wait for a sender:
WAITING = ("pending", "retrying")


class WebhookError(ValueError):
    """An endpoint or message cannot be registered, found or changed; the
    message says why in one line (never with a secret)."""


# -- endpoints ------------------------------------------------------------------

def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_url(url: str, settings: Settings) -> str:
    """The endpoint URL as given, or ``WebhookError`` saying what is wrong."""
    url = (url or "").strip()
    if not url:
        raise WebhookError("the URL is empty")
    if len(url) > 2000:
        raise WebhookError("the URL is longer than 2000 characters")
    if any(c.isspace() for c in url) or any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise WebhookError("the URL holds spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # a port that is not a number raises
    except ValueError:
        raise WebhookError("the URL is not a valid URL") from None
    host = parts.hostname or ""
    if parts.scheme not in {"https", "http"} or not host:
        raise WebhookError("the URL must start with https:// and name a host")
    if parts.username is not None or parts.password is not None:
        raise WebhookError("the URL must not carry a user name or password "
                           "(verify the signature instead)")
    if parts.fragment:
        raise WebhookError("the URL must not have a #fragment")
    if port == 0:
        raise WebhookError("the URL's port must be 1 to 65535")
    if parts.scheme == "http" and not (settings.embedded or _loopback(host)):
        raise WebhookError("the URL must use https:// (http:// only to this machine)")
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_event_types(event_types) -> list[str] | None:
    """The event types an endpoint takes (``None``: every type), or ``WebhookError``."""
    wanted = list(dict.fromkeys(t.strip() for t in (event_types or ()) if t and t.strip()))
    unknown = [t for t in wanted if t not in EVENT_TYPES]
    if unknown:
        raise WebhookError(f"unknown event type {unknown[0][:60]!r}: use "
                           + ", ".join(EVENT_TYPES))
    return wanted or None


def register(session: Session, settings: Settings, practice_id: str, url: str, *,
             actor: str, description: str | None = None, event_types=None,
             ip: str | None = None) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint of a practice; returns it and its signing secret
    (shown to the practice once: only its sealed form is kept)."""
    if session.get(Practice, practice_id) is None:
        raise WebhookError("no such practice")
    url = check_url(url, settings)
    description = (description or "").strip() or None
    if description is not None:
        if len(description) > 200:
            raise WebhookError("the description is longer than 200 characters")
        try:
            one_line(description)
        except ValueError as exc:
            raise WebhookError(f"the description {exc}") from None
    types = check_event_types(event_types)
    active = session.scalar(select(func.count()).select_from(WebhookEndpoint).where(
        WebhookEndpoint.practice_id == practice_id, WebhookEndpoint.active.is_(True)))
    if active >= MAX_ENDPOINTS:
        raise WebhookError(f"a practice has at most {MAX_ENDPOINTS} active endpoints: "
                           "disable one first")
    secret = new_secret()
    endpoint = WebhookEndpoint(practice_id=practice_id, url=url, description=description,
                               event_types=types, active=True, created_at=utcnow(),
                               secret=sealing.seal(settings.secret_key, SECRET_PURPOSE, secret))
    session.add(endpoint)
    session.flush()
    _audit(session, actor, "webhook.add", f"endpoint {endpoint.id}", ip)
    return endpoint, secret


def endpoints(session: Session, practice_id: str) -> list[WebhookEndpoint]:
    """A practice's endpoints, active ones first, newest first."""
    return list(session.scalars(select(WebhookEndpoint)
                                .where(WebhookEndpoint.practice_id == practice_id)
                                .order_by(WebhookEndpoint.active.desc(),
                                          WebhookEndpoint.created_at.desc())))


def find_endpoint(session: Session, endpoint_id: str,
                  practice_id: str | None = None) -> WebhookEndpoint:
    """The endpoint (of ``practice_id`` when given), or ``WebhookError``."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or (practice_id is not None and endpoint.practice_id != practice_id):
        raise WebhookError(f"no webhook endpoint {endpoint_id[:40]!r}")
    return endpoint


def disable(session: Session, endpoint_id: str, *, actor: str,
            practice_id: str | None = None, ip: str | None = None) -> WebhookEndpoint:
    """Stop sending to an endpoint; its waiting messages are cancelled."""
    endpoint = find_endpoint(session, endpoint_id, practice_id)
    if endpoint.active:
        now = utcnow()
        endpoint.active, endpoint.disabled_at = False, now
        session.execute(update(WebhookMessage).where(
            WebhookMessage.endpoint_id == endpoint.id, WebhookMessage.status.in_(WAITING))
            .values(status="cancelled", next_attempt_at=None, updated_at=now,
                    last_error="the endpoint was disabled")
            .execution_options(synchronize_session=False))
        _audit(session, actor, "webhook.disable", f"endpoint {endpoint.id}", ip)
    return endpoint


def rotate_secret(session: Session, settings: Settings, endpoint_id: str, *, actor: str,
                  practice_id: str | None = None, ip: str | None = None) -> str:
    """Give an active endpoint a new signing secret (returned, shown once); the
    old one signs nothing more, retries included."""
    endpoint = find_endpoint(session, endpoint_id, practice_id)
    if not endpoint.active:
        raise WebhookError("the endpoint is disabled")
    secret = new_secret()
    endpoint.secret = sealing.seal(settings.secret_key, SECRET_PURPOSE, secret)
    _audit(session, actor, "webhook.rotate", f"endpoint {endpoint.id}", ip)
    return secret


def messages(session: Session, endpoint_id: str,
             limit: int = LOG_LIMIT) -> list[WebhookMessage]:
    """An endpoint's delivery log, newest first."""
    return list(session.scalars(select(WebhookMessage)
                                .where(WebhookMessage.endpoint_id == endpoint_id)
                                .order_by(WebhookMessage.created_at.desc(),
                                          WebhookMessage.event_key.desc())
                                .limit(limit)))


def _audit(session: Session, actor: str, action: str, detail: str, ip: str | None) -> None:
    session.add(AuditEntry(actor=actor, action=action, detail=detail, ip=ip))


# -- fan-out: the timeline becomes messages ---------------------------------------

def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex


def fan_out(p: Pipeline, *, limit: int = BATCH) -> int:
    """Turn new timeline events into messages (and their ``send_webhook``
    outbox messages), moving the ``webhooks`` cursor in the same transaction;
    returns how many messages. Cheap when nothing is new: two reads."""
    now = utcnow()
    created: list[int] = []
    with p.db.session() as session:
        last = session.scalar(select(EventCursor.last_event_id).where(EventCursor.name == CURSOR))
        newest = session.scalar(select(func.max(ReferralEvent.id)))
        if newest is None or (last is not None and newest <= last):
            return 0
        if last is None:
            try:
                with session.begin_nested():
                    session.add(EventCursor(name=CURSOR, last_event_id=0, updated_at=now))
            except IntegrityError:
                pass  # another scheduler made it first
        # The lock: a second scheduler waits here, then sees the cursor moved.
        cursor = session.scalars(select(EventCursor).where(EventCursor.name == CURSOR)
                                 .with_for_update()).one()
        rows = session.execute(
            select(ReferralEvent, Referral.practice_id, Referral.external_id)
            .join(Referral, Referral.id == ReferralEvent.referral_id)
            .where(ReferralEvent.id > cursor.last_event_id)
            .order_by(ReferralEvent.id).limit(limit)).all()
        hooks = session.scalars(select(WebhookEndpoint).where(
            WebhookEndpoint.active.is_(True),
            WebhookEndpoint.practice_id.in_({r.practice_id for r in rows}))).all()
        if hooks:
            created = _messages_for(session, rows, hooks, now)
        cursor.last_event_id = _settled(cursor.last_event_id, [r[0] for r in rows], now)
        cursor.updated_at = now
    p.relay(created)
    return len(created)


def _settled(last: int, events: list[ReferralEvent], now: dt.datetime) -> int:
    """How far the cursor may move: over events without a gap before them, or
    whose gap has waited ``GAP_SETTLE`` (a rolled-back transaction's id)."""
    for event in events:
        if event.id != last + 1 and event.at > now - GAP_SETTLE:
            break
        last = event.id
    return last


def _messages_for(session: Session, rows, hooks: list[WebhookEndpoint],
                  now: dt.datetime) -> list[int]:
    """The new messages of these events for these endpoints, added to
    ``session`` with their outbox messages; returns the outbox ids."""
    wanted = [(event, practice_id, external_id) for event, practice_id, external_id in rows
              if event.kind in KINDS]
    keys = [_event_key(event) for event, _, _ in wanted]
    existing = set(session.execute(select(WebhookMessage.endpoint_id, WebhookMessage.event_key)
                                   .where(WebhookMessage.endpoint_id.in_([h.id for h in hooks]),
                                          WebhookMessage.event_key.in_(keys))).all()) \
        if keys else set()
    deliveries = _deliveries(session, {event.referral_id for event, _, _ in wanted
                                       if event.kind != "status"})
    outbox_ids = []
    for event, practice_id, external_id in wanted:
        event_type = KINDS[event.kind]
        payload = None
        for hook in hooks:
            key = _event_key(event)
            if hook.practice_id != practice_id or (hook.id, key) in existing \
                    or not _admits(hook, event_type) or event.at < hook.created_at:
                continue
            if payload is None:
                payload = event_payload(event, event_type, external_id,
                                        deliveries.get(event.referral_id, []))
            message = WebhookMessage(id=new_message_id(), endpoint_id=hook.id, event_key=key,
                                     event_type=event_type, referral_id=event.referral_id,
                                     payload=payload, status="pending", attempts=0,
                                     created_at=now, updated_at=now)
            session.add(message)
            outbox_ids.append(outbox.enqueue(session, outbox.SEND_WEBHOOK,
                                             {"message_id": message.id}))
    session.flush()
    return [m.id for m in outbox_ids]


def _event_key(event: ReferralEvent) -> str:
    return f"event:{event.id}"


def _admits(hook: WebhookEndpoint, event_type: str) -> bool:
    return not hook.event_types or event_type in hook.event_types


def _deliveries(session: Session, referral_ids: set[str]) -> dict[str, list]:
    found: dict[str, list] = {}
    if referral_ids:
        for row in session.execute(select(Delivery.id, Delivery.referral_id, Delivery.channel,
                                          Delivery.status)
                                   .where(Delivery.referral_id.in_(referral_ids))):
            found.setdefault(row.referral_id, []).append(row)
    return found


def event_payload(event: ReferralEvent, event_type: str, external_id: str | None,
                  deliveries: list) -> dict:
    """The Standard Webhooks body of a timeline event: ``type``, ``timestamp``
    (when it happened) and ``data`` with ids and status only."""
    data = {"referral_id": event.referral_id, "external_id": external_id,
            "event_id": event.id}
    if event_type == STATUS_CHANGED:
        data.update(status=event.to_status, previous_status=event.from_status)
    else:
        status = DELIVERY_STATUS[event_type]
        channel, delivery_id = _delivery_of(event, status, deliveries)
        data.update(delivery_id=delivery_id, channel=channel, status=status)
    data["links"] = {"referral": f"/api/v1/referrals/{event.referral_id}"}
    return {"type": event_type, "timestamp": _iso(event.at), "data": data}


def _delivery_of(event: ReferralEvent, status: str, deliveries: list):
    """(channel, delivery id) of a delivery event: the delivery the timeline
    entry names (``referral_events.delivery_id``)."""
    for d in deliveries:
        if d.id == event.delivery_id:
            return d.channel, d.id
    return None, None


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def body_of(payload: dict) -> bytes:
    """The bytes sent and signed: compact JSON, keys sorted (the same bytes on
    every attempt and on either database)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True,
                      ensure_ascii=False).encode()


# -- sending --------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Answer:
    """What an attempt got: ``sent``, ``transient`` (retry) or ``permanent``."""

    outcome: str
    status_code: int | None = None
    error: str | None = None


def send(p: Pipeline, message_id: str) -> str | None:
    """Claim the message (pending/retrying and due → sending, by one sender,
    only while its endpoint is active), sign and POST it, record what the
    endpoint answered. Returns the message's status."""
    now = utcnow()
    with p.db.session() as session:
        active = select(WebhookEndpoint.id).where(WebhookEndpoint.active.is_(True))
        message = session.scalars(
            update(WebhookMessage)
            .where(WebhookMessage.id == message_id, WebhookMessage.status.in_(WAITING),
                   WebhookMessage.next_attempt_at.is_(None)
                   | (WebhookMessage.next_attempt_at <= now),
                   WebhookMessage.endpoint_id.in_(active))
            .values(status="sending", attempts=WebhookMessage.attempts + 1, claimed_at=now,
                    updated_at=now)
            .returning(WebhookMessage)
            .execution_options(synchronize_session=False)).one_or_none()
        if message is None:  # sent, failed, not due, another sender has it, or gone
            return session.scalar(select(WebhookMessage.status)
                                  .where(WebhookMessage.id == message_id))
        endpoint = session.get(WebhookEndpoint, message.endpoint_id)
        url, sealed, attempt = endpoint.url, endpoint.secret, message.attempts
        body = body_of(message.payload)
    try:
        secret = sealing.unseal(p.settings.secret_key, SECRET_PURPOSE, sealed)
    except sealing.SealError:
        answer = Answer("permanent", error="the endpoint's signing secret cannot be opened "
                                           "(the clinic's secret key changed): rotate it")
    else:
        answer = post(url, message_id, secret, body)
    status, queued = _record(p, message_id, attempt, answer)
    p.relay(queued)  # a retry due now goes at once; later ones through the scheduler
    return status


def signed_headers(message_id: str, secret: str, body: bytes,
                   at: dt.datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (signed now unless ``at``)."""
    from standardwebhooks import Webhook

    at = at or dt.datetime.now(dt.timezone.utc)
    return {"webhook-id": message_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, at, body)}


def post(url: str, message_id: str, secret: str, body: bytes) -> Answer:
    """One attempt: POST the signed body; redirects are not followed."""
    import requests

    from refflow import __version__

    headers = {"content-type": "application/json", "user-agent": f"refflow/{__version__}",
               **signed_headers(message_id, secret, body)}
    try:
        # stream: only the status line and headers are read, never the body
        with requests.post(url, data=body, headers=headers, timeout=SEND_TIMEOUT,
                           allow_redirects=False, stream=True) as response:
            code = response.status_code
    except requests.Timeout:
        return Answer("transient", error="no answer in time (timeout)")
    except requests.RequestException as exc:
        return Answer("transient", error=f"could not reach the endpoint ({type(exc).__name__})")
    if 200 <= code < 300:
        return Answer("sent", code)
    if code in {408, 429} or code >= 500:
        return Answer("transient", code, f"HTTP {code}")
    if 300 <= code < 400:
        return Answer("permanent", code, f"HTTP {code}: redirects are not followed "
                                         "(register the URL it points to)")
    return Answer("permanent", code, f"HTTP {code}")


def _record(p: Pipeline, message_id: str, attempt: int, answer: Answer) -> tuple[str, list[int]]:
    """Record an attempt's answer: sent, retrying (with its outbox message at
    the next attempt's time) or failed. An answer for a claim the scheduler
    took back (the sender was too slow) is not recorded: the attempt after it
    counts. Returns the status and the retry's outbox message."""
    now = utcnow()
    queued = []
    with p.db.session() as session:
        message = session.scalars(select(WebhookMessage).where(
            WebhookMessage.id == message_id, WebhookMessage.status == "sending",
            WebhookMessage.attempts == attempt).with_for_update()).one_or_none()
        if message is None:
            return session.scalar(select(WebhookMessage.status)
                                  .where(WebhookMessage.id == message_id)), []
        message.claimed_at, message.updated_at = None, now
        message.response_status, message.next_attempt_at = answer.status_code, None
        retry_until = message.created_at + dt.timedelta(hours=p.settings.webhook_retry_hours)
        if answer.outcome == "sent":
            message.status, message.sent_at, message.last_error = "sent", now, None
        elif answer.outcome == "transient" and now < retry_until:
            wait = min(backoff_seconds(p.settings, message.attempts),
                       (retry_until - now).total_seconds())  # the last one at the window's end
            message.status, message.last_error = "retrying", answer.error
            message.next_attempt_at = now + dt.timedelta(seconds=wait)
            queued.append(outbox.enqueue(session, outbox.SEND_WEBHOOK,
                                         {"message_id": message.id},
                                         available_at=message.next_attempt_at))
        else:
            message.status = "failed"
            message.last_error = answer.error + (
                " (its retry window ended)" if answer.outcome == "transient" else "")
            log.warning("webhook message %s to endpoint %s failed after %d attempt(s)",
                        message.id, message.endpoint_id, message.attempts)
        session.flush()
        return message.status, [m.id for m in queued]


def resend(p: Pipeline, message_id: str, *, actor: str, practice_id: str | None = None,
           endpoint_id: str | None = None, ip: str | None = None) -> None:
    """Send a message again (same ``webhook-id``, a new attempt): one of a
    practice's and of an endpoint's (when given), to an active endpoint, not
    being sent right now."""
    now = utcnow()
    with p.db.session() as session:
        found = session.execute(select(WebhookMessage.endpoint_id, WebhookEndpoint.practice_id,
                                       WebhookEndpoint.active)
                                .join(WebhookEndpoint,
                                      WebhookEndpoint.id == WebhookMessage.endpoint_id)
                                .where(WebhookMessage.id == message_id)).one_or_none()
        if found is None or (practice_id is not None and found.practice_id != practice_id) \
                or (endpoint_id is not None and found.endpoint_id != endpoint_id):
            raise WebhookError(f"no webhook message {message_id[:40]!r}")
        if not found.active:
            raise WebhookError("its endpoint is disabled")
        changed = session.execute(update(WebhookMessage).where(
            WebhookMessage.id == message_id, WebhookMessage.status != "sending")
            .values(status="pending", next_attempt_at=None, updated_at=now)
            .execution_options(synchronize_session=False)).rowcount
        if not changed:
            raise WebhookError("it is being sent right now")
        queued = outbox.enqueue(session, outbox.SEND_WEBHOOK, {"message_id": message_id})
        _audit(session, actor, "webhook.resend", f"message {message_id}", ip)
        session.flush()
        ids = [queued.id]
    p.relay(ids)


# -- the scheduler's sweep --------------------------------------------------------

def redrive(p: Pipeline, *, stuck_after: dt.timedelta, lease: dt.timedelta) -> int:
    """Queue again what lost its worker or its broker message; returns how many.

    - A message still ``sending`` whose claim is older than the lease (at
      least the send timeout) lost its sender: it is sent again, with the
      same ``webhook-id`` (the receiver may have it already).
    - A message due for ``stuck_after`` that nobody claimed lost its message.
    """
    now = utcnow()
    lease = max(lease, dt.timedelta(seconds=sum(SEND_TIMEOUT) + 5))
    queued = 0
    with p.db.session() as session:
        expired = session.scalars(select(WebhookMessage).where(
            WebhookMessage.status == "sending", WebhookMessage.claimed_at < now - lease)
            .with_for_update(skip_locked=True)).all()
        for message in expired:
            message.status, message.claimed_at, message.next_attempt_at = "retrying", None, now
            message.last_error = "the worker sending this message stopped; sending again"
            message.updated_at = now
            outbox.enqueue(session, outbox.SEND_WEBHOOK, {"message_id": message.id})
            queued += 1
        due = session.scalars(select(WebhookMessage.id).where(
            WebhookMessage.status.in_(WAITING),
            func.coalesce(WebhookMessage.next_attempt_at, WebhookMessage.updated_at)
            < now - stuck_after,
            WebhookMessage.updated_at < now - stuck_after)).all()
        for message_id in due:
            outbox.enqueue(session, outbox.SEND_WEBHOOK, {"message_id": message_id})
            session.execute(update(WebhookMessage).where(WebhookMessage.id == message_id)
                            .values(updated_at=now))
            queued += 1
    if queued:
        log.info("re-drove %d webhook message(s)", queued)
    return queued
