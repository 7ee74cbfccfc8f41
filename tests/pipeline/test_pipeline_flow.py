"""The pipeline end to end with real Redis, PostgreSQL, SMTP and the fax spool."""

from __future__ import annotations

import json
import signal
import time
import uuid
from email.utils import parseaddr

from sample_referrals import flagged, routine
from sqlalchemy import func, select

from refflow.db.models import DeliveryAttempt, OutboxMessage, ReferralEvent


def submit(intake, body, **headers) -> str:
    r = intake.post("/api/v1/referrals", json=body, headers={**intake.auth, **headers})
    assert r.status_code == 202, r.get_json()
    return r.get_json()["id"]


def as_staff(intake, stack):
    """Sign ``intake`` in as a new staff user; its API calls then carry the
    session's CSRF token, as a signed-in browser's script must."""
    import re
    import uuid

    from refflow.accounts.users import create_user

    with stack.db.session() as session:
        user = create_user(session, f"staff-{uuid.uuid4().hex[:6]}@clinic.example",
                           "correct horse battery", role="staff")
    with intake.session_transaction() as sess:
        sess["user_id"] = user.id
    page = intake.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    intake.environ_base["HTTP_X_CSRFTOKEN"] = token
    return user


def test_referral_goes_all_the_way_to_completed(stack, intake, smtp):
    rid = submit(intake, routine())
    stack.wait_for([rid], timeout=60)

    timeline = intake.get(f"/api/v1/referrals/{rid}", headers=intake.auth).get_json()
    moves = [(e["from"], e["to"]) for e in timeline["timeline"] if e["kind"] == "status"]
    assert moves == [(None, "received"), ("received", "planning"), ("planning", "planned"),
                     ("planned", "delivering"), ("delivering", "completed")]
    deliveries = {d.channel: d for d in stack.deliveries(rid)}
    assert set(deliveries) == {"email", "fax", "pdf"}
    assert all(d.status == "sent" and d.attempts == 1 for d in deliveries.values())

    # the email on the SMTP server, with the handout attached
    [message] = smtp.for_delivery(deliveries["email"].id)
    assert parseaddr(message["To"])[1] == "mary.stone@example.org"
    attachments = [p for p in message.walk() if p.get_content_type() == "application/pdf"]
    assert attachments and attachments[0].get_payload(decode=True).startswith(b"%PDF")
    assert "Stone" not in message["Subject"]  # no PHI in the subject

    # the fax image and its job file in the spool
    spool = stack.settings.fax_spool_dir
    job = json.loads((spool / "sendq" / f"{deliveries['fax'].id}.json").read_text())
    assert job["number"] == "+17635550198"
    tiff = (spool / "docq" / f"{deliveries['fax'].id}.tif").read_bytes()
    assert tiff[:4] == b"II*\x00" and job["pages"] == 2  # cover + one-page summary

    # the chart PDF in the document store
    charts = list((stack.settings.documents_dir / "chart" / rid).glob("*.pdf"))
    assert len(charts) == 1 and charts[0].read_bytes().startswith(b"%PDF")
    assert "chart record" in _pdf_text(charts[0].read_bytes())

    # the documents over the API
    docs = intake.get(f"/api/v1/referrals/{rid}/documents", headers=intake.auth).get_json()
    assert {d["name"] for d in docs["items"]} == {"handout.pdf", "summary.pdf", "chart.pdf",
                                                  "fax.tiff"}
    plan = intake.get(f"/api/v1/referrals/{rid}/plan", headers=intake.auth).get_json()
    assert plan["decision"] == "release" and plan["exercises"]


def test_flagged_plan_waits_for_staff_then_delivers(stack, intake):
    rid = submit(intake, flagged())
    stack.wait_for([rid], statuses=("needs_review",), timeout=60)
    assert all(d.status != "sent" for d in stack.deliveries(rid))  # nothing went out

    r = intake.post(f"/api/v1/referrals/{rid}/approve", json={"note": "checked"},
                    headers=intake.auth)
    assert r.status_code == 403  # a practice cannot approve its own plan

    user = as_staff(intake, stack)
    r = intake.post(f"/api/v1/referrals/{rid}/approve", json={"note": "seen in clinic"})
    assert r.status_code == 200, r.get_json()
    stack.wait_for([rid], timeout=60)
    timeline = intake.get(f"/api/v1/referrals/{rid}").get_json()["timeline"]
    approval = [e for e in timeline if e["to"] == "planned"][-1]
    assert approval["actor"] == f"user:{user.id}" and "seen in clinic" in approval["reason"]
    again = intake.post(f"/api/v1/referrals/{rid}/approve")
    assert again.status_code == 409
    # what went out is the approved plan, not the draft that was held
    plan = intake.get(f"/api/v1/referrals/{rid}/plan", headers=intake.auth).get_json()
    assert plan["decision"] == "release" and plan["approved"]["at"]
    assert any(f["severity"] == "needs_review" for f in plan["flags"])  # what the clinician saw
    handout = _pdf_text(intake.get(f"/api/v1/referrals/{rid}/documents/handout.pdf",
                                   headers=intake.auth).data)
    summary = _pdf_text(intake.get(f"/api/v1/referrals/{rid}/documents/summary.pdf",
                                   headers=intake.auth).data)
    assert "DRAFT" not in handout and "Please wait until we call you" not in handout
    assert "Held for review" not in summary and "Plan released" in summary
    assert f"Approved by {user.email}" in " ".join(summary.split())  # who, by name


def test_transient_failures_are_retried_then_sent_once(stack, intake, smtp):
    smtp.fail_next[:] = ["451 4.3.0 Try again later", "451 4.3.0 Try again later"]
    rid = submit(intake, routine())
    stack.wait_for([rid], timeout=60)
    email = [d for d in stack.deliveries(rid) if d.channel == "email"][0]
    assert email.status == "sent" and email.attempts == 3
    assert len(smtp.for_delivery(email.id)) == 1
    with stack.db.session() as session:
        retries = session.scalars(select(ReferralEvent.reason).where(
            ReferralEvent.referral_id == rid, ReferralEvent.kind == "retry")).all()
        outcomes = session.scalars(select(DeliveryAttempt.outcome).where(
            DeliveryAttempt.delivery_id == email.id).order_by(DeliveryAttempt.id)).all()
    assert len(retries) == 2 and all("email" in r for r in retries)
    assert outcomes == ["transient", "transient", "sent"]


def test_permanent_failure_then_staff_fixes_target_and_resends(stack, intake, smtp):
    smtp.fail_next[:] = ["550 5.1.1 No such user"]
    rid = submit(intake, routine())
    stack.wait_for([rid], statuses=("failed",), timeout=60)
    email = [d for d in stack.deliveries(rid) if d.channel == "email"][0]
    assert email.status == "failed" and "550" in (email.last_error or "")
    # the operator's log says which delivery needs staff, and nothing about the patient
    worker_log = (stack.settings.data_dir / "worker.log").read_text()
    assert f"delivery {email.id} of referral {rid} (email) failed: permanent error" in worker_log
    assert "stone" not in worker_log.lower() and "mary" not in worker_log.lower()
    sent_before = {d.id: d.attempts for d in stack.deliveries(rid) if d.status == "sent"}
    assert len(sent_before) == 2

    as_staff(intake, stack)
    r = intake.post(f"/api/v1/deliveries/{email.id}/retry",
                    json={"target": "mary.stone@mail.example.org"})
    assert r.status_code == 200, r.get_json()
    stack.wait_for([rid], timeout=60)
    after = {d.id: d for d in stack.deliveries(rid)}
    assert after[email.id].status == "sent"
    assert after[email.id].target == "mary.stone@mail.example.org"
    # the other deliveries were not sent again
    assert {i: after[i].attempts for i in sent_before} == sent_before
    [message] = smtp.for_delivery(email.id)
    assert parseaddr(message["To"])[1] == "mary.stone@mail.example.org"
    # retrying a delivery that was sent is refused
    r = intake.post(f"/api/v1/deliveries/{email.id}/retry")
    assert r.status_code == 409


def test_broker_down_at_intake_loses_nothing(stack, intake, redis_server, smtp):
    redis_server.stop()
    try:
        started = time.monotonic()
        ids = [submit(intake, routine(external_id=f"OUTAGE-{i}")) for i in range(20)]
        assert time.monotonic() - started < 10  # intake never waits on the broker
        with stack.db.session() as session:
            waiting = session.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.sent_at.is_(None)))
        assert waiting >= 20
        time.sleep(1.0)
    finally:
        redis_server.start()
    stack.wait_for(ids, timeout=120)
    for rid in ids:
        emails = [d for d in stack.deliveries(rid) if d.channel == "email"]
        assert len(smtp.for_delivery(emails[0].id)) == 1


def test_worker_killed_mid_delivery_sends_each_once(stack, intake, smtp):
    smtp.delay = 0.5  # each email takes a while: the kill lands mid-delivery
    try:
        ids = [submit(intake, routine(external_id=f"KILL-{i}")) for i in range(6)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until some email is being sent
            with stack.db.session() as session:
                from refflow.db.models import Delivery

                sending = session.scalar(select(func.count()).select_from(Delivery).where(
                    Delivery.status == "sending", Delivery.channel == "email"))
            if sending:
                break
            time.sleep(0.05)
        stack.kill("worker", signal.SIGKILL)
        stack.start_worker()
        # the email being sent when the worker died may or may not have gone:
        # it is left in doubt for staff (its referral "failed", needing them)
        stack.wait_for(ids, ("completed", "failed"), timeout=120)
    finally:
        smtp.delay = 0.0
    for rid in ids:
        for d in stack.deliveries(rid):
            if d.channel == "email":
                assert d.status in ("sent", "in_doubt"), d.status
                received = len(smtp.for_delivery(d.id))
                assert received == 1 if d.status == "sent" else received <= 1, d.id
            else:  # fax and PDF filing are idempotent: sent again if need be, once
                assert d.status == "sent"
            if d.channel == "fax":
                assert (stack.settings.fax_spool_dir / "sendq" / f"{d.id}.json").exists()


def test_no_patient_data_in_logs_broker_or_error_messages(stack, intake, smtp, redis_server):
    """Synthetic PHI with a canary (reliability.md O-5): after a full run with a
    failure and a retry, the canary is nowhere but the database's PHI columns."""
    import redis

    from refflow.db.models import Delivery, ReferralEvent

    canary = "Zzcanary" + uuid.uuid4().hex[:10]
    body = routine(external_id=f"EHR-{uuid.uuid4().hex[:6]}")
    body["patient"]["family_name"] = canary
    body["patient"]["email"] = f"{canary.lower()}@example.org"
    body["notes"] = f"{canary} notes"
    smtp.fail_next[:] = ["451 4.3.0 Try again later", f"550 5.1.1 <{canary.lower()}@example.org>"
                                                       " no such user"]
    rid = submit(intake, body)
    stack.wait_for([rid], statuses=("failed",), timeout=60)

    logs = "".join((stack.settings.data_dir / f"{n}.log").read_text(errors="replace")
                   for n in ("worker", "scheduler"))
    assert canary.lower() not in logs.lower()
    r = redis.Redis.from_url(redis_server.url)
    for key in r.scan_iter():
        kind = r.type(key)
        values = (r.lrange(key, 0, -1) if kind == b"list" else
                  list(r.hgetall(key).values()) if kind == b"hash" else
                  [r.get(key)] if kind == b"string" else [])
        assert all(canary.lower().encode() not in (v or b"").lower() for v in values), key
    with stack.db.session() as session:
        errors = session.scalars(select(Delivery.last_error).where(
            Delivery.referral_id == rid)).all()
        reasons = session.scalars(select(ReferralEvent.reason).where(
            ReferralEvent.referral_id == rid)).all()
    assert any(e and "550" in e for e in errors)
    assert canary.lower() not in " ".join(e or "" for e in errors + reasons).lower()


def test_red_flag_tells_the_referrer_and_sends_the_patient_nothing(stack, intake):
    """do_not_exercise: zero exercises; the referring office gets the fax at once,
    the chart gets its copy, and no exercise handout goes to the patient."""
    body = routine(external_id="EHR-REDFLAG")
    body["clinical"]["blood_pressure"] = {"systolic": 210, "diastolic": 115}
    rid = submit(intake, body)
    stack.wait_for([rid], timeout=60)
    plan = intake.get(f"/api/v1/referrals/{rid}/plan", headers=intake.auth).get_json()
    assert plan["decision"] == "do_not_exercise" and plan["exercises"] == []
    # staff see it among the flagged referrals, though nothing waits for them
    detail = intake.get(f"/api/v1/referrals/{rid}", headers=intake.auth).get_json()
    assert detail["flagged"] is True
    deliveries = {d.channel: d for d in stack.deliveries(rid)}
    assert set(deliveries) == {"fax", "pdf"}
    assert all(d.status == "sent" for d in deliveries.values())


def test_an_out_of_scope_diagnosis_is_held_with_its_flag_listed_once(stack, intake):
    """The intake rule and the plan engine both find the diagnosis out of scope
    (guidance I2): a clinician decides, no exercises are drafted, and the
    plan names the problem once."""
    body = routine(external_id="EHR-SPRAIN")
    body["diagnosis"] = {"codes": ["S93.401A"], "text": "ankle sprain"}
    rid = submit(intake, body)
    stack.wait_for([rid], statuses=("needs_review",), timeout=60)
    plan = intake.get(f"/api/v1/referrals/{rid}/plan", headers=intake.auth).get_json()
    assert plan["decision"] == "review" and plan["exercises"] == []
    assert [f["code"] for f in plan["flags"]].count("diagnosis_out_of_scope") == 1
    detail = intake.get(f"/api/v1/referrals/{rid}", headers=intake.auth).get_json()
    assert detail["flagged"] is True and stack.deliveries(rid) == []


def _pdf_text(pdf: bytes) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        return " ".join(" ".join(doc[i].get_textpage().get_text_range().split())
                        for i in range(len(doc)))
    finally:
        doc.close()
