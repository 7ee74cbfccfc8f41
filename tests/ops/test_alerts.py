"""Alerts on SQLite and PostgreSQL, to a real SMTP server (aiosmtpd) and a real
webhook receiver: a fax outage (the spool the fax gateway reads is gone) makes
50 failed attempts and sends exactly one "started" email, its recovery exactly
one "cleared"; two schedulers evaluating at once notify once; the outbox and
broker-queue backlogs, no worker online (a real Redis with the worker's own
heartbeat) and referrals waiting in review each start and clear once."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import uuid

import pytest
from sample_referrals import routine
from sqlalchemy import select, update
from standardwebhooks import Webhook
from webhook_receiver import Receiver

from refflow.db.models import Document, Incident, OutboxMessage, Referral, utcnow
from refflow.documents.names import FAX
from refflow.ops import alerts
from refflow.ops.queues import DELIVERY_QUEUE, broker_stats_reader, redis_client
from refflow.pipeline import flow, outbox
from refflow.pipeline.context import WORKER, Pipeline
from refflow.pipeline.stored_documents import document_bytes, store_documents
from refflow.referrals import states
from refflow.workers.monitor import start_heartbeat

PATIENT = ("Mary", "Stone", "1962-04-11", "mary.stone@example.org")


@pytest.fixture
def ops_address():
    return f"ops-{uuid.uuid4().hex[:8]}@clinic.example"


@pytest.fixture
def pipeline(settings, db, smtp, ops_address):
    """The scheduler's view: SMTP on the test server, alerts to ``ops_address``,
    failed attempts retried at once (so a test can fail them in a row)."""
    return Pipeline(settings.with_overrides(
        smtp_url=f"smtp://127.0.0.1:{smtp.port}", alert_email=ops_address,
        retry_base_seconds=0.0, retry_max_seconds=0.0, delivery_max_attempts=1000,
        alert_outbox_backlog=3, alert_queue_backlog=3, alert_no_worker_seconds=30,
        alert_review_hours=24), db=db, publish=lambda task, args: None)


def _alerts(smtp, address: str) -> list[str]:
    """The subjects of the alert emails ``address`` received, in order."""
    with smtp.lock:
        return [m["Subject"] for m in smtp.messages if m["To"] == address]


def _fax_deliveries(client, auth, p: Pipeline, n: int) -> list[str]:
    """``n`` referrals each with a fax to send (one planned and rendered for
    real, its fax stored again for the others)."""
    r = client.post("/api/v1/referrals", json=routine(external_id=f"EHR-{uuid.uuid4().hex[:8]}"),
                    headers=auth)
    assert r.status_code == 202, r.get_json()
    outbox.relay(p.db, lambda task, args: None)
    assert flow.build_plan(p, r.get_json()["id"]) == states.DELIVERING
    ids = []
    with p.db.session() as session:
        model = session.get(Referral, r.get_json()["id"])
        fax = document_bytes(p.store, session.scalars(select(Document).where(
            Document.referral_id == model.id, Document.name == FAX)).one())
        for _ in range(n):
            row = Referral(practice_id=model.practice_id, status=states.DELIVERING,
                           payload=model.payload, payload_sha256=model.payload_sha256,
                           received_on=model.received_on)
            session.add(row)
            session.flush()
            store_documents(p.store, session, row.id, {FAX: fax})
            (delivery,) = flow.create_deliveries(p, session, row, [
                {"channel": "fax", "document": FAX, "target": model.payload["referrer"]["fax"]}],
                actor=WORKER)
            ids.append(delivery.id)
    return ids


class SpoolOutage:
    """The folder the fax gateway reads jobs from is gone (a file where it was):
    every fax fails with a transient error until it is back."""

    def __init__(self, settings) -> None:
        self.sendq = settings.fax_spool_dir / "sendq"

    def start(self) -> None:
        shutil.rmtree(self.sendq, ignore_errors=True)
        self.sendq.parent.mkdir(parents=True, exist_ok=True)
        self.sendq.write_text("not a folder\n")

    def end(self) -> None:
        self.sendq.unlink()


def _fail(p: Pipeline, deliveries: list[str], attempts: int, evaluators: list[Pipeline]) -> None:
    """Every delivery fails ``attempts`` times; each evaluator looks after each failure."""
    for _ in range(attempts):
        for delivery_id in deliveries:
            assert flow.deliver(p, delivery_id) == "retrying"
            _evaluate_at_once(evaluators)


def _evaluate_at_once(evaluators: list[Pipeline], now=None) -> None:
    """Each evaluator runs ``alerts.evaluate`` in its own thread, all at once."""
    if len(evaluators) == 1:
        alerts.evaluate(evaluators[0], now=now)
        return
    start, errors = threading.Barrier(len(evaluators)), []

    def run(q: Pipeline) -> None:
        start.wait()
        try:
            alerts.evaluate(q, now=now)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(q,)) for q in evaluators]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def _incidents(p: Pipeline, kind: str) -> list[Incident]:
    with p.db.session() as session:
        return list(session.scalars(select(Incident).where(Incident.kind == kind)
                                    .order_by(Incident.id)))


def test_a_fax_outage_of_50_failures_sends_one_started_and_one_cleared_email(
        client, auth, pipeline, smtp, ops_address):
    deliveries = _fax_deliveries(client, auth, pipeline, 10)
    outage = SpoolOutage(pipeline.settings)
    outage.start()
    _fail(pipeline, deliveries, 5, [pipeline])  # 50 failed attempts, evaluated after each
    assert _alerts(smtp, ops_address) == ["[refflow] STARTED: deliveries failing on channel fax"]

    outage.end()
    assert {flow.deliver(pipeline, d) for d in deliveries} == {"sent"}
    for _ in range(3):
        alerts.evaluate(pipeline)
    assert _alerts(smtp, ops_address) == [
        "[refflow] STARTED: deliveries failing on channel fax",
        "[refflow] CLEARED: deliveries failing on channel fax"]
    (incident,) = _incidents(pipeline, alerts.CHANNEL_FAILING)
    assert incident.key == "fax" and incident.cleared_at is not None
    assert incident.start_notified_at and incident.clear_notified_at
    with smtp.lock:
        texts = [m.get_payload(decode=True).decode() for m in smtp.messages
                 if m["To"] == ops_address]
    assert "failed" in texts[0] and "went through" in texts[1]
    for text in texts:
        assert not any(part in text for part in PATIENT)

    # The failures of the cleared incident do not open a new one.
    alerts.evaluate(pipeline)
    assert len(_incidents(pipeline, alerts.CHANNEL_FAILING)) == 1


def test_two_schedulers_evaluating_at_once_notify_once(client, auth, pipeline, smtp,
                                                       ops_address):
    deliveries = _fax_deliveries(client, auth, pipeline, 5)
    other = Pipeline(pipeline.settings, db=pipeline.db)  # a second scheduler
    outage = SpoolOutage(pipeline.settings)
    outage.start()
    _fail(pipeline, deliveries, 2, [pipeline, other])
    outage.end()
    for delivery_id in deliveries:
        assert flow.deliver(pipeline, delivery_id) == "sent"
        _evaluate_at_once([pipeline, other])
    assert _alerts(smtp, ops_address) == [
        "[refflow] STARTED: deliveries failing on channel fax",
        "[refflow] CLEARED: deliveries failing on channel fax"]
    assert len(_incidents(pipeline, alerts.CHANNEL_FAILING)) == 1


def test_outbox_backlog_and_review_waiting_start_and_clear_once(pipeline, smtp, ops_address,
                                                                make_practice):
    now = utcnow()
    with pipeline.db.session() as session:
        for _ in range(4):
            outbox.enqueue(session, outbox.FINALIZE, {"referral_id": "x"})
        # a retry waiting for its time is not backlog
        outbox.enqueue(session, outbox.DELIVER, {"delivery_id": "y"},
                       available_at=now + dt.timedelta(hours=1))
        practice_id, _ = make_practice()
        row = Referral(practice_id=practice_id, status=states.RECEIVED, payload={},
                       payload_sha256="0" * 64, received_on=now.date())
        session.add(row)
        session.flush()
        for status in (states.PLANNING, states.NEEDS_REVIEW):
            states.transition(session, row, status, actor=WORKER)
        referral_id = row.id
    alerts.evaluate(pipeline)
    assert _alerts(smtp, ops_address) == ["[refflow] STARTED: outbox backlog"]
    (backlog,) = _incidents(pipeline, alerts.OUTBOX_BACKLOG)
    assert backlog.detail == "4 outbox messages waiting (alert above 3)"

    later = now + dt.timedelta(hours=25)  # the referral has now waited a day in review
    with pipeline.db.session() as session:  # ... and the relay caught up (the retry is due now)
        session.execute(update(OutboxMessage).where(OutboxMessage.task == outbox.FINALIZE)
                        .values(sent_at=now))
    for _ in range(2):
        alerts.evaluate(pipeline, now=later)
    assert _alerts(smtp, ops_address)[1:] == ["[refflow] CLEARED: outbox backlog",
                                              "[refflow] STARTED: referrals waiting in review"]
    (review,) = _incidents(pipeline, alerts.REVIEW_WAITING)
    assert review.detail == f"1 referral(s) waiting in review longer than 24 h: {referral_id}"

    with pipeline.db.session() as session:
        states.transition(session, session.get(Referral, referral_id), states.CANCELLED,
                          actor=WORKER)
    for _ in range(2):
        alerts.evaluate(pipeline, now=later)
    assert _alerts(smtp, ops_address)[3:] == ["[refflow] CLEARED: referrals waiting in review"]


def test_queue_backlog_and_no_worker_on_a_real_broker(pipeline, smtp, ops_address, redis_server):
    stats = broker_stats_reader(redis_server.url)
    client = redis_client(redis_server.url)
    client.delete(DELIVERY_QUEUE)
    client.rpush(DELIVERY_QUEUE, *[b"{}"] * 4)
    now = utcnow()
    alerts.evaluate(pipeline, stats, now=now)
    # no worker yet: the incident is open but waits its 30 s before it is told
    assert _alerts(smtp, ops_address) == [f"[refflow] STARTED: broker queue {DELIVERY_QUEUE} backlog"]
    alerts.evaluate(pipeline, stats, now=now + dt.timedelta(seconds=31))
    assert _alerts(smtp, ops_address)[1:] == ["[refflow] STARTED: no worker online"]

    stop = threading.Event()
    beat = start_heartbeat(redis_server.url, stop)  # the worker's own heartbeat
    try:
        client.delete(DELIVERY_QUEUE)
        for _ in range(2):
            alerts.evaluate(pipeline, stats, now=now + dt.timedelta(seconds=40))
        assert sorted(_alerts(smtp, ops_address)[2:]) == [
            f"[refflow] CLEARED: broker queue {DELIVERY_QUEUE} backlog",
            "[refflow] CLEARED: no worker online"]
    finally:
        stop.set()
        beat.join(10)

    # A worker away for less than the grace time (a restart) is not told at all.
    alerts.evaluate(pipeline, stats, now=now + dt.timedelta(seconds=50))
    client.set("refflow:worker:restarted:1", "1", ex=20)
    alerts.evaluate(pipeline, stats, now=now + dt.timedelta(seconds=60))
    client.delete("refflow:worker:restarted:1")
    assert len(_alerts(smtp, ops_address)) == 4
    quiet = _incidents(pipeline, alerts.NO_WORKER)[-1]
    assert quiet.cleared_at is not None and quiet.start_notified_at is None


def test_alerts_by_signed_webhook(client, auth, settings, db, smtp):
    receiver = Receiver()
    secret = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
    try:
        p = Pipeline(settings.with_overrides(alert_webhook_url=receiver.url,
                                             alert_webhook_secret=secret,
                                             alert_outbox_backlog=1), db=db)
        with db.session() as session:
            for _ in range(2):
                outbox.enqueue(session, outbox.FINALIZE, {"referral_id": "x"})
        receiver.answers = [503]  # the receiver is down for the first try
        alerts.evaluate(p)
        assert receiver.accepted == {}
        alerts.evaluate(p, now=utcnow() + alerts.CLAIM_LEASE + dt.timedelta(seconds=1))
        (message_id, body), = receiver.accepted.items()
        headers = next(h for h, b in receiver.requests if b == body)
        assert Webhook(secret).verify(body, headers) == json.loads(body)
        assert json.loads(body)["type"] == "incident.started"
        assert json.loads(body)["data"]["kind"] == alerts.OUTBOX_BACKLOG
        with db.session() as session:
            session.execute(update(OutboxMessage).values(sent_at=utcnow()))
        alerts.evaluate(p)
        alerts.evaluate(p)
        assert [json.loads(b)["type"] for b in receiver.accepted.values()] == [
            "incident.started", "incident.cleared"]
        assert len(receiver.requests) == 3
    finally:
        receiver.stop()


def test_the_dashboard_lists_open_and_recently_cleared_incidents(client, pipeline, db):
    from web_forms import PASSWORD, sign_in

    from refflow.accounts.users import create_user

    now = utcnow()
    alerts.record(pipeline, alerts.Condition(alerts.CHANNEL_FAILING, "fax", True,
                                             "7 of 8 delivery attempts failed"), now)
    alerts.record(pipeline, alerts.Condition(alerts.NO_WORKER, "", True, "0 worker(s) online"),
                  now - dt.timedelta(days=3))
    alerts.record(pipeline, alerts.Condition(alerts.NO_WORKER, "", False, "1 worker(s) online"),
                  now - dt.timedelta(days=2))  # cleared two days ago: no longer listed
    alerts.record(pipeline, alerts.Condition(alerts.OUTBOX_BACKLOG, "", True, "600 waiting"),
                  now - dt.timedelta(hours=2))
    alerts.record(pipeline, alerts.Condition(alerts.OUTBOX_BACKLOG, "", False, "2 waiting"), now)
    with db.session() as session:
        create_user(session, "pt@clinic.example", PASSWORD, role="staff")
    sign_in(client, "pt@clinic.example")
    page = client.get("/").text
    assert "Incidents: 1 open" in page
    assert "deliveries failing on channel fax" in page and "7 of 8 delivery attempts" in page
    assert "outbox backlog" in page and "no worker online" not in page
    assert 'href="/failures?channel=fax"' in page
