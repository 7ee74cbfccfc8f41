"""Alerts: conditions an operator must hear about, as incidents with one
notification when each starts and one when it clears (never one per failure).

The scheduler evaluates the conditions every ``REFFLOW_ALERT_CHECK_SECONDS``
(``Sweep.run_if_due``):

- ``channel_failing`` (key: the channel): in the last
  ``REFFLOW_ALERT_WINDOW_MINUTES`` at least ``REFFLOW_ALERT_CHANNEL_FAILURES``
  attempts failed and they are at least ``REFFLOW_ALERT_CHANNEL_FAILURE_PERCENT``
  of its attempts. It clears once the channel's last
  ``REFFLOW_ALERT_CHANNEL_CLEAR_SUCCESSES`` attempts all went through, or no
  attempt failed in the window. Attempts before the channel's last incident
  cleared do not count again (so a cleared incident does not flap back).
- ``queue_backlog`` (key: the broker queue) and ``outbox_backlog``: more than
  ``REFFLOW_ALERT_QUEUE_BACKLOG`` / ``REFFLOW_ALERT_OUTBOX_BACKLOG`` messages
  waiting; clears at half of it.
- ``no_worker``: no worker's heartbeat in the broker for
  ``REFFLOW_ALERT_NO_WORKER_SECONDS`` (a restart does not alert).
- ``review_waiting``: referrals in needs_review for longer than
  ``REFFLOW_ALERT_REVIEW_HOURS`` (one incident for all of them).

Incidents live in the database with at most one open per (kind, key) (a
partial unique index), and each notification is claimed by a conditional
UPDATE before it is sent: several schedulers evaluating at once open an
incident once and notify once. A notification goes by email to
``REFFLOW_ALERT_EMAIL`` (through ``REFFLOW_SMTP_URL``) and/or as a signed POST
(Standard Webhooks, ``REFFLOW_ALERT_WEBHOOK_SECRET``) to
``REFFLOW_ALERT_WEBHOOK_URL``; it counts as sent when one of them took it, and
is tried again while none has. Alerts carry counts, channel and queue names
and referral ids: never PHI.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import smtplib
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from refflow.config import Settings
from refflow.db.models import (
    Delivery,
    DeliveryAttempt,
    Incident,
    OutboxMessage,
    Referral,
    ReferralEvent,
    utcnow,
)
from refflow.pipeline.context import Pipeline
from refflow.referrals import states

log = logging.getLogger("refflow.alerts")

CHANNEL_FAILING = "channel_failing"
QUEUE_BACKLOG = "queue_backlog"
OUTBOX_BACKLOG = "outbox_backlog"
NO_WORKER = "no_worker"
REVIEW_WAITING = "review_waiting"
TITLES = {
    CHANNEL_FAILING: "deliveries failing on channel {key}",
    QUEUE_BACKLOG: "broker queue {key} backlog",
    OUTBOX_BACKLOG: "outbox backlog",
    NO_WORKER: "no worker online",
    REVIEW_WAITING: "referrals waiting in review",
}
FAILED_OUTCOMES = ("transient", "permanent")
CLAIM_LEASE = dt.timedelta(seconds=120)  # a notification claimed longer ago is tried again
RECENT = dt.timedelta(hours=24)  # cleared incidents the dashboard still lists
REVIEW_IDS_SHOWN = 5


@dataclass(frozen=True)
class Condition:
    """One evaluation: ``holds`` True (open or keep open), False (clear), None
    (between the thresholds: leave as it is)."""

    kind: str
    key: str
    holds: bool | None
    detail: str


def title(kind: str, key: str) -> str:
    return TITLES.get(kind, kind).format(key=key)


# -- conditions -------------------------------------------------------------------

def channel_conditions(session, settings: Settings, now: dt.datetime) -> list[Condition]:
    window = dt.timedelta(minutes=settings.alert_window_minutes)
    open_keys = set(session.scalars(select(Incident.key).where(
        Incident.kind == CHANNEL_FAILING, Incident.cleared_at.is_(None))))
    last_cleared = dict(session.execute(
        select(Incident.key, func.max(Incident.cleared_at))
        .where(Incident.kind == CHANNEL_FAILING, Incident.cleared_at.is_not(None))
        .group_by(Incident.key)).all())

    def counts(since: dt.datetime, channel: str | None = None) -> dict[str, tuple[int, int]]:
        """channel -> (failed, total) of the attempts finished after ``since``."""
        query = (select(Delivery.channel,
                        func.sum(case((DeliveryAttempt.outcome.in_(FAILED_OUTCOMES), 1), else_=0)),
                        func.count())
                 .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
                 .where(DeliveryAttempt.finished_at > since,
                        DeliveryAttempt.outcome.in_(("sent", *FAILED_OUTCOMES)))
                 .group_by(Delivery.channel))
        if channel is not None:
            query = query.where(Delivery.channel == channel)
        return {c: (int(failed or 0), total) for c, failed, total in session.execute(query)}

    seen = counts(now - window)
    for channel, cleared in last_cleared.items():
        if channel in seen and cleared > now - window:  # counted for the incident that cleared
            seen[channel] = counts(cleared, channel).get(channel, (0, 0))
    conditions = []
    minutes = f"{settings.alert_window_minutes:g} min"
    for channel in sorted(set(seen) | open_keys):
        failed, total = seen.get(channel, (0, 0))
        detail = f"{failed} of {total} delivery attempts failed in the last {minutes}"
        if channel in open_keys:
            need = max(1, settings.alert_channel_clear_successes)
            latest = session.scalars(
                select(DeliveryAttempt.outcome)
                .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
                .where(Delivery.channel == channel, DeliveryAttempt.finished_at.is_not(None),
                       DeliveryAttempt.outcome.in_(("sent", *FAILED_OUTCOMES)))
                .order_by(DeliveryAttempt.finished_at.desc(), DeliveryAttempt.id.desc())
                .limit(need)).all()
            recovered = len(latest) == need and all(o == "sent" for o in latest)
            if recovered:
                detail = f"the last {need} attempts went through; " + detail
            conditions.append(Condition(CHANNEL_FAILING, channel,
                                        not (recovered or failed == 0), detail))
        else:
            holds = (failed >= settings.alert_channel_failures
                     and failed * 100 >= settings.alert_channel_failure_percent * total)
            conditions.append(Condition(CHANNEL_FAILING, channel, holds, detail))
    return conditions


def _backlog(kind: str, key: str, waiting: int, threshold: int, what: str) -> Condition:
    holds = True if waiting > threshold else False if waiting <= threshold // 2 else None
    return Condition(kind, key, holds, f"{waiting} {what} waiting (alert above {threshold})")


def outbox_condition(session, settings: Settings, now: dt.datetime) -> Condition:
    """Messages due that the relay has not published (a delayed retry is not due)."""
    waiting = session.scalar(select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.sent_at.is_(None), OutboxMessage.available_at <= now)) or 0
    return _backlog(OUTBOX_BACKLOG, "", waiting, settings.alert_outbox_backlog,
                    "outbox messages")


def broker_conditions(stats: dict, settings: Settings) -> list[Condition]:
    conditions = [_backlog(QUEUE_BACKLOG, queue, depth, settings.alert_queue_backlog, "messages")
                  for queue, depth in sorted(stats["queue_depth"].items())]
    online = stats["workers_online"]
    conditions.append(Condition(NO_WORKER, "", online == 0, f"{online} worker(s) online"))
    return conditions


def review_condition(session, settings: Settings, now: dt.datetime) -> Condition:
    """Referrals in needs_review since before the limit (the time of their move
    into it, not of their last edit)."""
    entered = func.max(ReferralEvent.at)
    waiting = session.execute(
        select(Referral.id, entered)
        .join(ReferralEvent, ReferralEvent.referral_id == Referral.id)
        .where(Referral.status == states.NEEDS_REVIEW,
               ReferralEvent.to_status == states.NEEDS_REVIEW)
        .group_by(Referral.id)
        .having(entered < now - dt.timedelta(hours=settings.alert_review_hours))
        .order_by(entered)).all()
    ids = [row[0] for row in waiting]
    detail = (f"{len(ids)} referral(s) waiting in review longer than "
              f"{settings.alert_review_hours:g} h")
    if ids:
        detail += ": " + ", ".join(ids[:REVIEW_IDS_SHOWN]) + (
            f" and {len(ids) - REVIEW_IDS_SHOWN} more" if len(ids) > REVIEW_IDS_SHOWN else "")
    return Condition(REVIEW_WAITING, "", bool(ids), detail)


# -- incidents --------------------------------------------------------------------

def evaluate(p: Pipeline, broker_stats=None, now: dt.datetime | None = None) -> int:
    """Evaluate every condition, open and clear incidents, send the
    notifications due. ``broker_stats()`` gives queue depths and workers online
    (``ops.queues``); without it (or when the broker does not answer) those
    conditions are left as they are. Returns how many notifications were sent."""
    now = now or utcnow()
    settings = p.settings
    with p.db.session() as session:
        conditions = [*channel_conditions(session, settings, now),
                      outbox_condition(session, settings, now),
                      review_condition(session, settings, now)]
    if broker_stats is not None:
        try:
            conditions += broker_conditions(broker_stats(), settings)
        except Exception as exc:  # noqa: BLE001 - the broker is away: queue alerts wait
            log.warning("alerts: broker stats unavailable (%s)", type(exc).__name__)
    for condition in conditions:
        if condition.holds is not None:
            record(p, condition, now)
    return notify_due(p, now)


def record(p: Pipeline, condition: Condition, now: dt.datetime) -> None:
    """Open (or keep open) the incident of a condition that holds; clear the
    open one of a condition that no longer does."""
    is_open = and_(Incident.kind == condition.kind, Incident.key == condition.key,
                   Incident.cleared_at.is_(None))
    with p.db.session() as session:
        if condition.holds:
            seen = session.execute(update(Incident).where(is_open)
                                   .values(last_seen_at=now, detail=condition.detail[:500])
                                   .execution_options(synchronize_session=False)).rowcount
            if seen:
                return
        else:
            session.execute(update(Incident).where(is_open)
                            .values(cleared_at=now, detail=condition.detail[:500])
                            .execution_options(synchronize_session=False))
            return
    try:
        with p.db.session() as session:
            session.add(Incident(kind=condition.kind, key=condition.key, started_at=now,
                                 last_seen_at=now, detail=condition.detail[:500]))
    except IntegrityError:
        pass  # another scheduler opened it a moment ago
    else:
        grace = _grace(p.settings, condition.kind)
        if grace:  # a worker starting or restarting: told only if it lasts
            log.info("incident started: %s (%s); alert if it lasts %d s",
                     title(condition.kind, condition.key), condition.detail,
                     grace.total_seconds())
        else:
            log.warning("incident started: %s (%s)", title(condition.kind, condition.key),
                        condition.detail)


def _grace(settings: Settings, kind: str) -> dt.timedelta:
    return dt.timedelta(seconds=settings.alert_no_worker_seconds if kind == NO_WORKER else 0)


def _start_due():
    return and_(Incident.start_notified_at.is_(None), Incident.cleared_at.is_(None))


def _clear_due():
    return and_(Incident.cleared_at.is_not(None), Incident.start_notified_at.is_not(None),
                Incident.clear_notified_at.is_(None))


def notify_due(p: Pipeline, now: dt.datetime) -> int:
    """Send each due notification once: "started" for an open incident (after
    its grace time), "cleared" for a cleared one whose start was notified. An
    incident that cleared before its start was notified sends nothing."""
    settings = p.settings
    if not (settings.alert_email or settings.alert_webhook_url):
        return 0
    with p.db.session() as session:
        due = session.scalars(select(Incident).where(or_(_start_due(), _clear_due()))
                              .order_by(Incident.id)).all()
        session.expunge_all()
    sent = 0
    for incident in due:
        ending = incident.cleared_at is not None
        if not ending and now - incident.started_at < _grace(settings, incident.kind):
            continue
        pending = _clear_due() if ending else _start_due()
        with p.db.session() as session:
            claimed = session.execute(
                update(Incident).where(Incident.id == incident.id, pending,
                                       or_(Incident.notify_claimed_at.is_(None),
                                           Incident.notify_claimed_at < now - CLAIM_LEASE))
                .values(notify_claimed_at=now)
                .execution_options(synchronize_session=False)).rowcount
        if not claimed:
            continue  # another scheduler is sending it, or has sent it
        if not send_notification(settings, incident, "cleared" if ending else "started"):
            continue  # the claim lapses after CLAIM_LEASE and it is tried again
        done = {"clear_notified_at" if ending else "start_notified_at": utcnow(),
                "notify_claimed_at": None}
        with p.db.session() as session:
            session.execute(update(Incident).where(Incident.id == incident.id).values(**done)
                            .execution_options(synchronize_session=False))
        sent += 1
    return sent


# -- notifications ----------------------------------------------------------------

def payload(incident: Incident, event: str) -> dict:
    """What a notification says (ids, counts and names of channels: no PHI)."""
    return {"type": f"incident.{event}",
            "timestamp": utcnow().isoformat(timespec="seconds"),
            "data": {"id": incident.id, "kind": incident.kind, "key": incident.key,
                     "title": title(incident.kind, incident.key),
                     "started_at": incident.started_at.isoformat(timespec="seconds"),
                     "cleared_at": incident.cleared_at.isoformat(timespec="seconds")
                     if incident.cleared_at else None,
                     "detail": incident.detail}}


def send_notification(settings: Settings, incident: Incident, event: str) -> bool:
    """Email and/or POST one notification; True when a destination took it."""
    body = payload(incident, event)
    took = False
    if settings.alert_email:
        try:
            send_email(settings, alert_email(settings, body))
            took = True
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            log.warning("alert email for incident %s not sent (%s)", incident.id,
                        type(exc).__name__)
    if settings.alert_webhook_url:
        from refflow.interop.webhooks import post

        answer = post(settings.alert_webhook_url, f"msg_incident_{incident.id}_{event}",
                      settings.alert_webhook_secret, json.dumps(body).encode())
        if answer.outcome == "sent":
            took = True
        else:
            log.warning("alert webhook for incident %s not taken (%s)", incident.id,
                        answer.error)
    return took


def alert_email(settings: Settings, body: dict) -> EmailMessage:
    data, event = body["data"], body["type"].split(".", 1)[1]
    msg = EmailMessage()
    msg["Subject"] = f"[refflow] {event.upper()}: {data['title']}"
    msg["From"] = settings.smtp_from
    msg["To"] = settings.alert_email
    msg["Date"] = format_datetime(utcnow())
    domain = parseaddr(settings.smtp_from)[1].rpartition("@")[2] or "refflow"
    msg["Message-ID"] = make_msgid(f"incident-{data['id']}-{event}", domain=domain)
    lines = [f"{settings.clinic_name}: {data['title']} — {event}.", "",
             f"Started: {data['started_at']}"]
    if data["cleared_at"]:
        lines.append(f"Cleared: {data['cleared_at']}")
    lines += [f"Detail:  {data['detail']}", "",
              "The staff dashboard lists open and recent incidents."]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def send_email(settings: Settings, msg: EmailMessage) -> None:
    """Through ``REFFLOW_SMTP_URL`` (TLS as the email channel uses it)."""
    from refflow.plugins.channels.email import SmtpConfig

    if not settings.smtp_url:
        raise ValueError("REFFLOW_SMTP_URL is not set")
    cfg = SmtpConfig.from_url(settings.smtp_url, settings.smtp_timeout)
    if cfg.implicit_tls:
        client = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout,
                                  context=cfg.ssl_context())
    else:
        client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
    with client:
        client.ehlo()
        tls = cfg.implicit_tls
        if not tls and cfg.starttls != "never" and client.has_extn("starttls"):
            client.starttls(context=cfg.ssl_context())
            client.ehlo()
            tls = True
        if not tls and cfg.starttls == "require":
            raise smtplib.SMTPNotSupportedError("the SMTP server does not offer STARTTLS")
        if cfg.username:
            if not tls:
                raise smtplib.SMTPNotSupportedError("no SMTP credentials without TLS")
            client.login(cfg.username, cfg.password or "")
        client.send_message(msg, from_addr=parseaddr(settings.smtp_from)[1],
                            to_addrs=[settings.alert_email])


# -- the dashboard and the scheduler -----------------------------------------------

def recent(session, now: dt.datetime | None = None) -> list[Incident]:
    """Open incidents and those cleared in the last day, newest first."""
    now = now or utcnow()
    return list(session.scalars(select(Incident).where(
        or_(Incident.cleared_at.is_(None), Incident.cleared_at >= now - RECENT))
        .order_by(Incident.cleared_at.is_not(None), Incident.started_at.desc()).limit(50)))


class Sweep:
    """The scheduler's alert round, every ``REFFLOW_ALERT_CHECK_SECONDS``, in a
    thread of its own: a mail server or webhook receiver that hangs never
    holds up the outbox relay (a round still running skips the next)."""

    def __init__(self, p: Pipeline) -> None:
        from refflow.ops.queues import broker_stats_reader

        self.p = p
        self.broker_stats = (broker_stats_reader(p.settings.broker_url)
                             if p.settings.broker_url else None)
        self.next_at = 0.0
        self.thread: threading.Thread | None = None

    def run_if_due(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now < self.next_at or (self.thread is not None and self.thread.is_alive()):
            return
        self.next_at = now + self.p.settings.alert_check_seconds
        self.thread = threading.Thread(target=self._round, name="refflow-alerts", daemon=True)
        self.thread.start()

    def _round(self) -> None:
        try:
            evaluate(self.p, self.broker_stats)
        except Exception as exc:  # noqa: BLE001 - the database may be away: next round
            log.warning("alert round failed (%s)", type(exc).__name__)
