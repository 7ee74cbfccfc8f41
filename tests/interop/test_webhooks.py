"""Webhooks (issue 18), on SQLite and PostgreSQL: a practice's endpoint on a
real local HTTP server receives its referrals' events, signed per Standard
Webhooks and verified here with the ``standardwebhooks`` library.

The broker is replaced by a list the test drains, calling the task's function
(``webhooks.send``) as the worker would: the outbox, the fan-out, the claims
and the retries are the real ones.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
import web_forms
from sqlalchemy import func, select, update
from standardwebhooks import Webhook
from webhook_receiver import Receiver

from refflow.accounts.users import create_user
from refflow.db.models import (
    AuditEntry,
    Delivery,
    EventCursor,
    OutboxMessage,
    Referral,
    ReferralEvent,
    WebhookEndpoint,
    WebhookMessage,
    utcnow,
)
from refflow.interop import webhooks
from refflow.pipeline import outbox
from refflow.pipeline.context import WORKER, Pipeline
from refflow.referrals import states


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


class Broker:
    """Stands in for Redis + the worker: relayed tasks are run in order."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, dict]] = []

    def __call__(self, task: str, args: dict) -> None:
        self.tasks.append((task, dict(args)))


@pytest.fixture
def pipe(settings):
    broker = Broker()
    quick = settings.with_overrides(retry_base_seconds=0.05, retry_max_seconds=0.2)
    p = Pipeline(quick, publish=broker)
    p.broker = broker
    return p


def run(p, *, until=None, timeout: float = 10.0) -> None:
    """Scheduler rounds (fan-out, relay) and the worker's sends until no
    message waits (or until ``until()``)."""
    deadline = time.monotonic() + timeout
    while True:
        webhooks.fan_out(p)
        p.relay()
        while p.broker.tasks:
            task, args = p.broker.tasks.pop(0)
            if task == outbox.SEND_WEBHOOK:
                webhooks.send(p, args["message_id"])
        if until is not None and until():
            return
        if until is None:
            with p.db.session() as s:
                if not s.scalar(select(func.count()).select_from(WebhookMessage)
                                .where(WebhookMessage.status.in_(webhooks.WAITING))):
                    return
        if time.monotonic() > deadline:
            raise AssertionError("webhook messages still waiting")
        time.sleep(0.02)


def next_send(p, timeout: float = 5.0) -> str:
    """The message id of the next ``send_webhook`` task the relay publishes
    (when its backoff is over)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p.relay()
        for task, args in list(p.broker.tasks):
            p.broker.tasks.remove((task, args))
            if task == outbox.SEND_WEBHOOK:
                return args["message_id"]
        time.sleep(0.02)
    raise AssertionError("no send_webhook task")


def endpoint(p, practice_id: str, url: str, **kw) -> tuple[str, str]:
    with p.db.session() as s:
        row, secret = webhooks.register(s, p.settings, practice_id, url, actor="test", **kw)
        return row.id, secret


def submit(client, auth, body) -> str:
    r = client.post("/api/v1/referrals", json=body, headers=auth)
    assert r.status_code == 202, r.text
    return r.get_json()["id"]


def move(p, referral_id: str, *statuses: str) -> None:
    for status in statuses:
        with p.db.session() as s:
            states.transition(s, s.get(Referral, referral_id), status, actor=WORKER)


def delivery_sent(p, referral_id: str, channel: str = "fax") -> str:
    with p.db.session() as s:
        d = Delivery(referral_id=referral_id, channel=channel, document="summary.pdf",
                     target="+17635550198", status="sent", sent_at=utcnow())
        s.add(d)
        s.flush()
        states.record_event(s, referral_id, "delivery_sent", actor=WORKER, delivery_id=d.id,
                            reason=f"{channel}: sent (attempt 1); 2 pages in 48 s")
        return d.id


def all_messages(p) -> list[WebhookMessage]:
    with p.db.session() as s:
        return s.scalars(select(WebhookMessage).order_by(WebhookMessage.created_at,
                                                         WebhookMessage.event_key)).all()


# -- registering ---------------------------------------------------------------------

def test_an_endpoint_gets_a_standard_webhooks_secret_shown_once_and_stored_sealed(
        pipe, practice):
    eid, secret = endpoint(pipe, practice[0], "https://ehr.example.org/hooks",
                           description="Our EHR", event_types=["referral.status_changed"])
    assert secret.startswith("whsec_")
    signature = Webhook(secret).sign("msg_1", dt.datetime.now(dt.timezone.utc), b"{}")
    assert signature.startswith("v1,")
    with pipe.db.session() as s:
        row = s.get(WebhookEndpoint, eid)
        assert secret not in row.secret and secret[6:] not in row.secret
        assert row.event_types == ["referral.status_changed"]
        assert s.scalar(select(AuditEntry.detail).where(AuditEntry.action == "webhook.add")) \
            == f"endpoint {eid}"
        # a new secret replaces it (shown once too)
        new = webhooks.rotate_secret(s, pipe.settings, eid, actor="test")
        assert new != secret and new.startswith("whsec_")


@pytest.mark.parametrize("url, why", [
    ("ftp://ehr.example.org/x", "https://"),
    ("https://user:pw@ehr.example.org/x", "user name or password"),
    ("https://ehr.example.org/x#frag", "fragment"),
    ("https://ehr.example.org/a b", "spaces"),
    ("https://", "name a host"),
    ("https://ehr.example.org:99999/", "not a valid URL"),
    ("http://ehr.example.org/x", "https://"),  # in production
])
def test_endpoint_urls_are_checked(settings, url, why):
    production = settings.with_overrides(env="production")
    with pytest.raises(webhooks.WebhookError, match=why.replace("/", ".")):
        webhooks.check_url(url, production)


def test_http_is_only_for_this_machine_in_production(settings):
    production = settings.with_overrides(env="production")
    for url in ("http://127.0.0.1:9000/hook", "http://localhost/hook", "http://[::1]:81/h"):
        assert webhooks.check_url(url, production) == url
    assert webhooks.check_url("http://ehr.internal/hook", settings)  # embedded: any host
    with pytest.raises(webhooks.WebhookError, match="unknown event type"):
        webhooks.check_event_types(["referral.status_changed", "patient.name"])


# -- the events ------------------------------------------------------------------------

def test_status_changes_arrive_signed_in_order_with_ids_and_no_patient_data(
        pipe, client, auth, practice, referral_body, receiver):
    eid, secret = endpoint(pipe, practice[0], receiver.url)
    referral_id = submit(client, auth, referral_body)
    changed = time.monotonic()
    run(pipe)
    first_latency = time.monotonic() - changed
    move(pipe, referral_id, states.PLANNING, states.PLANNED, states.DELIVERING)
    delivery_id = delivery_sent(pipe, referral_id)
    move(pipe, referral_id, states.COMPLETED)
    run(pipe)

    events = receiver.events(secret)
    statuses = [(e["data"]["previous_status"], e["data"]["status"]) for e in events
                if e["type"] == "referral.status_changed"]
    assert statuses == [(None, "received"), ("received", "planning"), ("planning", "planned"),
                        ("planned", "delivering"), ("delivering", "completed")]
    sent = [e for e in events if e["type"] == "delivery.sent"]
    assert [e["data"] for e in sent] == [{
        "referral_id": referral_id, "external_id": referral_body["external_id"],
        "event_id": sent[0]["data"]["event_id"], "delivery_id": delivery_id, "channel": "fax",
        "status": "sent", "links": {"referral": f"/api/v1/referrals/{referral_id}"}}]
    assert all(e["data"]["referral_id"] == referral_id for e in events)
    ids = [e["data"]["event_id"] for e in events]
    assert ids == sorted(ids)
    # one webhook-id per event, and it is the message id of the delivery log
    assert len({e["webhook-id"] for e in events}) == len(events) == 6
    assert {m.id for m in all_messages(pipe)} == {e["webhook-id"] for e in events}
    # nothing about the patient: names, birth date, contact details, diagnosis
    patient = referral_body["patient"]
    for headers, body in receiver.requests:
        text = body.decode()
        for value in (patient["given_name"], patient["family_name"], patient["birth_date"],
                      patient["email"], referral_body["diagnosis"]["text"], "M81.0"):
            assert value not in text, value
        assert headers["content-type"] == "application/json"
        assert headers["webhook-signature"].startswith("v1,")
    # the timestamp is the event's time (ISO 8601, UTC)
    assert events[0]["timestamp"].endswith("Z")
    assert first_latency < 2.0


def test_a_receiver_outage_is_retried_and_the_message_delivered_once(
        pipe, client, auth, practice, referral_body, receiver):
    eid, secret = endpoint(pipe, practice[0], receiver.url)
    receiver.answers = [503, 503, 429]  # an endpoint in trouble ...
    referral_id = submit(client, auth, referral_body)
    webhooks.fan_out(pipe)
    (message,) = all_messages(pipe)
    for _ in range(3):  # 503, 503, 429: retried with backoff
        assert webhooks.send(pipe, next_send(pipe)) == "retrying"
    receiver.stop()  # ... then gone: nobody listens on the port
    assert webhooks.send(pipe, next_send(pipe)) == "retrying"
    with pipe.db.session() as s:
        row = s.get(WebhookMessage, message.id)
        assert row.attempts == 4 and row.next_attempt_at > row.updated_at
        assert "could not reach the endpoint" in row.last_error
    receiver.start()  # back, on the same port
    run(pipe)

    with pipe.db.session() as s:
        row = s.get(WebhookMessage, message.id)
        assert (row.status, row.attempts, row.response_status) == ("sent", 5, 204)
        assert row.last_error is None and row.sent_at is not None
    # every attempt carried the same webhook-id; the receiver holds it once
    assert {h["webhook-id"] for h, _ in receiver.requests} == {message.id}
    assert len(receiver.requests) == 4  # 3 answered in trouble, 1 accepted (1 never arrived)
    assert list(receiver.accepted) == [message.id]
    (event,) = receiver.events(secret)
    assert event["data"]["status"] == "received" and event["data"]["referral_id"] == referral_id


def test_a_4xx_fails_the_message_without_retrying(pipe, client, auth, practice,
                                                  referral_body, receiver):
    endpoint(pipe, practice[0], receiver.url)
    receiver.answers = [410]
    submit(client, auth, referral_body)
    run(pipe)
    (message,) = all_messages(pipe)
    assert (message.status, message.attempts, message.response_status) == ("failed", 1, 410)
    assert message.last_error == "HTTP 410"
    with pipe.db.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.task == outbox.SEND_WEBHOOK)) == 1  # no retry queued
    assert len(receiver.requests) == 1


def test_the_retry_window_ends_in_failure(pipe, client, auth, practice, referral_body,
                                          receiver):
    endpoint(pipe, practice[0], receiver.url)
    receiver.answers = [503]
    submit(client, auth, referral_body)
    webhooks.fan_out(pipe)
    with pipe.db.session() as s:  # the event is a day old
        s.execute(update(WebhookMessage).values(
            created_at=utcnow() - dt.timedelta(hours=pipe.settings.webhook_retry_hours)))
    run(pipe)
    (message,) = all_messages(pipe)
    assert message.status == "failed" and message.last_error == \
        "HTTP 503 (its retry window ended)"


def test_resend_from_the_portal_delivers_again_with_the_same_webhook_id(
        pipe, app, db, practice, make_practice, referral_body, receiver):
    eid, secret = endpoint(pipe, practice[0], receiver.url)
    with db.session() as s:
        create_user(s, "office@north.example", web_forms.PASSWORD, role="practice",
                    practice="North Family Medicine")
    office = app.test_client()
    assert web_forms.sign_in(office, "office@north.example").status_code == 302
    referral_id = submit(office, {"Authorization": f"Bearer {practice[1]}"}, referral_body)
    run(pipe)
    (message,) = all_messages(pipe)
    assert message.status == "sent"

    page = office.get("/portal/webhooks")
    assert page.status_code == 200 and receiver.url in page.text and "Webhooks" in page.text
    page = office.get(f"/portal/webhooks/{eid}")
    assert page.status_code == 200
    assert message.id in page.text and referral_id in page.text and "Re-send" in page.text
    assert referral_body["patient"]["family_name"] not in page.text
    r = office.post(f"/portal/webhooks/{eid}/resend",
                    data={"csrf_token": web_forms.token(page.text), "message_id": message.id})
    assert r.status_code == 302 and r.headers["Location"] == f"/portal/webhooks/{eid}"
    assert "being sent again" in office.get(r.headers["Location"]).text
    run(pipe)

    assert [h["webhook-id"] for h, _ in receiver.requests] == [message.id, message.id]
    for headers, body in receiver.requests:
        assert Webhook(secret).verify(body, headers)["data"]["referral_id"] == referral_id
    (row,) = all_messages(pipe)
    assert (row.status, row.attempts) == ("sent", 2)
    with db.session() as s:
        assert s.scalar(select(AuditEntry.detail).where(
            AuditEntry.action == "webhook.resend")) == f"message {message.id}"
    # another practice's user cannot see or re-send it
    other_id, _ = make_practice("Lakeside")
    with db.session() as s:
        create_user(s, "office@lakeside.example", web_forms.PASSWORD, role="practice",
                    practice="Lakeside")
    other = app.test_client()
    web_forms.sign_in(other, "office@lakeside.example")
    assert other.get(f"/portal/webhooks/{eid}").status_code == 404
    page = other.get("/portal/webhooks")
    assert receiver.url not in page.text
    r = other.post(f"/portal/webhooks/{eid}/resend",
                   data={"csrf_token": web_forms.token(page.text), "message_id": message.id})
    assert r.status_code == 404
    with pytest.raises(webhooks.WebhookError):
        webhooks.resend(pipe, message.id, actor="test", practice_id=other_id)


def test_the_portal_adds_an_endpoint_shows_its_secret_once_and_disables_it(
        pipe, app, db, practice, receiver):
    with db.session() as s:
        create_user(s, "office@north.example", web_forms.PASSWORD, role="practice",
                    practice="North Family Medicine")
    office = app.test_client()
    web_forms.sign_in(office, "office@north.example")
    page = office.get("/portal/webhooks")
    token = web_forms.token(page.text)
    r = office.post("/portal/webhooks", data={"csrf_token": token, "url": "ftp://x.example"})
    assert r.status_code == 422 and "https://" in r.text
    r = office.post("/portal/webhooks", data={"csrf_token": token, "url": receiver.url,
                                              "description": "EHR",
                                              "event_types": ["delivery.failed"]})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    secret = r.text.split("data-secret>", 1)[1].split("<", 1)[0]
    assert secret.startswith("whsec_")
    with db.session() as s:
        (row,) = s.scalars(select(WebhookEndpoint)).all()
        assert row.event_types == ["delivery.failed"]
    assert secret not in office.get(f"/portal/webhooks/{row.id}").text  # shown once
    r = office.post(f"/portal/webhooks/{row.id}/disable", data={"csrf_token": token})
    assert r.status_code == 302
    with db.session() as s:
        assert s.get(WebhookEndpoint, row.id).active is False
        assert s.scalar(select(AuditEntry.action).where(
            AuditEntry.action == "webhook.disable")) is not None


def test_another_practices_endpoint_never_gets_this_practices_events(
        pipe, client, auth, practice, make_practice, referral_body, receiver):
    other_id, other_key = make_practice("Lakeside")
    other = Receiver()
    try:
        endpoint(pipe, practice[0], receiver.url)
        _, other_secret = endpoint(pipe, other_id, other.url)
        referral_id = submit(client, auth, referral_body)
        move(pipe, referral_id, states.CANCELLED)
        run(pipe)
        assert len(receiver.accepted) == 2 and other.requests == []
        theirs = submit(client, {"Authorization": f"Bearer {other_key}"}, referral_body)
        run(pipe)
        assert [e["data"]["referral_id"] for e in other.events(other_secret)] == [theirs]
        assert len(receiver.accepted) == 2
    finally:
        other.stop()


def test_an_endpoint_gets_only_the_event_types_it_asked_for_and_only_while_active(
        pipe, client, auth, practice, referral_body, receiver):
    wants_failures, _ = endpoint(pipe, practice[0], receiver.url, event_types=["delivery.sent"])
    referral_id = submit(client, auth, referral_body)
    move(pipe, referral_id, states.PLANNING, states.PLANNED, states.DELIVERING)
    delivery_sent(pipe, referral_id, channel="email")
    run(pipe)
    assert [json.loads(b)["type"] for b in receiver.accepted.values()] == ["delivery.sent"]
    with pipe.db.session() as s:
        webhooks.disable(s, wants_failures, actor="test")
    delivery_sent(pipe, referral_id, channel="pdf")
    run(pipe)
    assert len(receiver.accepted) == 1


def test_the_fan_out_is_idempotent(pipe, client, auth, practice, referral_body, receiver):
    endpoint(pipe, practice[0], receiver.url)
    referral_id = submit(client, auth, referral_body)
    move(pipe, referral_id, states.PLANNING)
    assert webhooks.fan_out(pipe) == 2
    assert webhooks.fan_out(pipe) == 0
    with pipe.db.session() as s:  # even from the start of the timeline again
        s.execute(update(EventCursor).values(last_event_id=0))
    assert webhooks.fan_out(pipe) == 0
    assert len(all_messages(pipe)) == 2
    with pipe.db.session() as s:
        assert s.scalar(select(EventCursor.last_event_id)) == s.scalar(
            select(func.max(ReferralEvent.id)))


def test_a_gap_in_the_timeline_holds_the_cursor_until_it_fills_or_settles(
        pipe, client, auth, practice, referral_body, receiver, monkeypatch):
    """An event id the fan-out has not seen below one it has (a transaction
    still open when a later one committed) is not skipped."""
    endpoint(pipe, practice[0], receiver.url)
    referral_id = submit(client, auth, referral_body)
    webhooks.fan_out(pipe)
    with pipe.db.session() as s:
        last = s.scalar(select(func.max(ReferralEvent.id)))
        s.add(ReferralEvent(id=last + 2, referral_id=referral_id, actor=WORKER, kind="status",
                            from_status="received", to_status="planning", at=utcnow()))
    assert webhooks.fan_out(pipe) == 1
    with pipe.db.session() as s:
        assert s.scalar(select(EventCursor.last_event_id)) == last  # held at the gap
        s.add(ReferralEvent(id=last + 1, referral_id=referral_id, actor=WORKER,
                            kind="delivery_sent", reason="fax: sent", at=utcnow()))
    assert webhooks.fan_out(pipe) == 1  # the late one, and nothing twice
    with pipe.db.session() as s:
        assert s.scalar(select(EventCursor.last_event_id)) == last + 2
        s.add(ReferralEvent(id=last + 4, referral_id=referral_id, actor=WORKER, kind="status",
                            from_status="planning", to_status="cancelled", at=utcnow()))
    assert webhooks.fan_out(pipe) == 1
    monkeypatch.setattr(webhooks, "GAP_SETTLE", dt.timedelta(seconds=0.2))
    time.sleep(0.3)  # a gap that never fills (a rolled-back transaction's id) is passed
    assert webhooks.fan_out(pipe) == 0
    with pipe.db.session() as s:
        assert s.scalar(select(EventCursor.last_event_id)) == last + 4


def test_a_sender_that_stopped_mid_send_loses_its_claim_and_the_message_goes_again(
        pipe, client, auth, practice, referral_body, receiver):
    endpoint(pipe, practice[0], receiver.url)
    submit(client, auth, referral_body)
    webhooks.fan_out(pipe)
    (message,) = all_messages(pipe)
    long_ago = utcnow() - dt.timedelta(minutes=5)
    with pipe.db.session() as s:  # claimed by a worker that died
        s.execute(update(WebhookMessage).values(status="sending", attempts=1,
                                                claimed_at=long_ago, updated_at=long_ago))
    pipe.broker.tasks.clear()
    assert webhooks.send(pipe, message.id) == "sending"  # a duplicate task does nothing
    assert webhooks.redrive(pipe, stuck_after=dt.timedelta(seconds=30),
                            lease=dt.timedelta(seconds=30)) == 1
    run(pipe)
    (row,) = all_messages(pipe)
    assert (row.status, row.attempts) == ("sent", 2)
    assert list(receiver.accepted) == [message.id]


# -- the CLI ---------------------------------------------------------------------------

def test_refflow_webhook_add_list_disable(sqlite_settings):
    import os
    import subprocess
    import sys

    env = {**os.environ, "REFFLOW_DATA_DIR": str(sqlite_settings.data_dir),
           "REFFLOW_SECRET_KEY": sqlite_settings.secret_key}
    env.pop("REFFLOW_DATABASE_URL", None)

    def refflow(*args):
        return subprocess.run([sys.executable, "-m", "refflow", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    assert refflow("practice", "add", "North").returncode == 0
    out = refflow("webhook", "add", "North", "https://ehr.example.org/hooks",
                  "--event", "delivery.sent", "--event", "delivery.failed", "--json")
    assert out.returncode == 0, out.stderr
    added = json.loads(out.stdout)
    assert added["secret"].startswith("whsec_") and added["url"] == "https://ehr.example.org/hooks"
    assert added["event_types"] == ["delivery.sent", "delivery.failed"]
    listed = json.loads(refflow("webhook", "list", "North", "--json").stdout)["items"]
    assert [(i["id"], i["active"]) for i in listed] == [(added["id"], True)]
    assert added["secret"] not in refflow("webhook", "list", "North").stdout
    out = refflow("webhook", "disable", added["id"])
    assert out.returncode == 0 and added["id"] in out.stdout
    assert "disabled" in refflow("webhook", "list", "North").stdout
    for args in (("webhook", "add", "Nobody", "https://x.example"),
                 ("webhook", "add", "North", "https://x.example", "--event", "patient.name"),
                 ("webhook", "add", "North", "https://u:p@x.example"),
                 ("webhook", "list", "Nobody"),
                 ("webhook", "disable", "no-such-endpoint")):
        out = refflow(*args)
        assert out.returncode == 2, (args, out)
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("refflow: error:"), args
