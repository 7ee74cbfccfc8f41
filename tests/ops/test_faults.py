"""Fault injection against the real pipeline: the database connection dropped
mid-request, the SMTP server down for a while, Redis restarted with work in
flight. Invariants: a failed request leaves nothing half-written and answers
in the JSON envelope; every referral completes; nothing is sent twice."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import sample_referrals
from sqlalchemy import create_engine, func, select, text

from refflow.db.models import Delivery, OutboxMessage, Referral, ReferralEvent

pytestmark = pytest.mark.faults


def routine(n: int = 0) -> dict:
    return sample_referrals.routine(external_id=f"FAULT-{n}")


def submit(intake, n: int = 0) -> str:
    r = intake.post("/api/v1/referrals", json=routine(n), headers=intake.auth)
    assert r.status_code == 202, r.get_json()
    return r.get_json()["id"]


def test_database_connection_dropped_mid_request(stack, pg_url):
    """Kill the web app's PostgreSQL connections while requests run."""
    from refflow.accounts.practices import create_practice, issue_key
    from refflow.app import create_app
    from refflow.db import database_for

    app_name = f"refflow_fault_{uuid.uuid4().hex[:6]}"
    sep = "&" if "?" in pg_url else "?"
    settings = stack.settings.with_overrides(database_url=f"{pg_url}{sep}application_name="
                                                          f"{app_name}",
                                             intake_rate_limit="100000/minute")
    app = create_app(settings, {"TESTING": True})
    db = database_for(settings)
    with db.session() as session:
        practice = create_practice(session, f"Fault {uuid.uuid4().hex[:6]}", fax="+1 763 555 0198")
        practice_id = practice.id
        _, key = issue_key(session, practice)
    headers = {"Authorization": f"Bearer {key}"}
    admin = create_engine(pg_url)
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set():
            with admin.begin() as conn:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE application_name = :name"), {"name": app_name})
            time.sleep(0.01)

    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def client(worker: int) -> None:
        c = app.test_client()
        for i in range(15):
            r = c.post("/api/v1/referrals", json=routine(worker * 100 + i), headers=headers)
            with lock:
                results.append((r.status_code, r.get_json()))

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    clients = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    stop.set()
    thread.join(5)
    admin.dispose()

    failed = [(s, b) for s, b in results if s != 202]
    accepted = {b["id"] for s, b in results if s == 202}
    assert failed, "the fault never hit a request (kill loop too slow?)"
    for status, body in failed:
        assert status in (500, 503), (status, body)
        assert set(body["error"]) == {"code", "message", "fields"}
        assert "Mary" not in body["error"]["message"] and "Stone" not in body["error"]["message"]
    with stack.db.session() as session:
        rows = set(session.scalars(select(Referral.id)
                                   .where(Referral.practice_id == practice_id)).all())
        # exactly the acknowledged referrals exist, each with its event and outbox row
        assert rows == accepted
        for rid in rows:
            assert session.scalar(select(func.count()).select_from(ReferralEvent)
                                  .where(ReferralEvent.referral_id == rid)) >= 1
        outbox = session.scalars(select(OutboxMessage.args)).all()
        assert accepted <= {a.get("referral_id") for a in outbox}
    # once the database is back, the same request succeeds
    retry = app.test_client().post("/api/v1/referrals", json=routine(999), headers=headers)
    assert retry.status_code == 202
    stack.wait_for(list(accepted | {retry.get_json()["id"]}), timeout=120)


def test_smtp_down_for_a_while_then_each_email_sent_once(stack, intake, smtp):
    smtp.fail_next[:] = ["421 4.3.2 Service not available"] * 3  # down for three attempts
    rid = submit(intake, 1)
    stack.wait_for([rid], timeout=90)
    [email] = [d for d in stack.deliveries(rid) if d.channel == "email"]
    assert email.status == "sent" and email.attempts >= 2
    assert len(smtp.for_delivery(email.id)) == 1


def test_redis_restarted_with_work_in_flight(stack, intake, redis_server, smtp):
    ids = [submit(intake, 10 + i) for i in range(6)]
    time.sleep(0.3)  # some plans are running, some messages still queued
    redis_server.stop()
    more = [submit(intake, 20 + i) for i in range(3)]  # intake keeps working (outbox)
    time.sleep(1.0)
    redis_server.start()
    stack.wait_for(ids + more, timeout=180)
    with stack.db.session() as session:
        deliveries = session.scalars(select(Delivery).where(
            Delivery.referral_id.in_(ids + more))).all()
    assert deliveries and all(d.status == "sent" for d in deliveries)
    for d in deliveries:
        if d.channel == "email":
            assert len(smtp.for_delivery(d.id)) == 1, d.id
