"""GET /api/v1/referrals/<id> tells the referring office the outcome: the
decision in plain words (released, held for review, rejected with the
clinician's reason, do-not-exercise with what to do first, cancelled) and
when, how and with what confirmation the plan reached the referrer."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sample_referrals import flagged, routine
from sqlalchemy import select

from refflow.db.models import Delivery, Referral
from refflow.pipeline import flow, staff_actions
from refflow.pipeline.context import Pipeline

REASON = "Needs the surgeon's written hip precautions first."


def _submit(client, auth, body) -> str:
    r = client.post("/api/v1/referrals", json=body, headers=auth)
    assert r.status_code == 202, r.get_json()
    return r.get_json()["id"]


def _deliver_all(p, db, rid) -> None:
    with db.session() as session:
        ids = session.scalars(select(Delivery.id).where(Delivery.referral_id == rid)).all()
    for delivery_id in ids:
        flow.deliver(p, delivery_id)


def _get(client, auth, rid) -> dict:
    r = client.get(f"/api/v1/referrals/{rid}", headers=auth)
    assert r.status_code == 200
    return r.get_json()


def red_flag() -> dict:
    body = routine(external_id="EHR-REDFLAG")
    body["clinical"]["blood_pressure"] = {"systolic": 210, "diastolic": 115}
    return body


def test_released_plan_shows_when_and_how_it_reached_the_referrer(client, auth, settings, db):
    p = Pipeline(settings, db=db)
    rid = _submit(client, auth, routine())
    body = _get(client, auth, rid)
    assert body["decision"]["kind"] == "pending" and body["plan_sent_to_referrer"] is None
    flow.build_plan(p, rid)
    assert _get(client, auth, rid)["plan_sent_to_referrer"] is None  # queued, not sent
    _deliver_all(p, db, rid)

    body = _get(client, auth, rid)
    assert body["status"] == "completed"
    assert body["decision"] == {
        "kind": "released", "label": "Plan released", "reason": None, "before_exercise": [],
        "message": "The plan was approved and sent: the patient has the exercise plan, and "
                   "you were sent the plan summary."}
    sent = body["plan_sent_to_referrer"]
    fax = next(d for d in body["deliveries"] if d["channel"] == "fax")
    assert sent == {"at": fax["sent_at"], "channel": "fax", "target": "+17635550198",
                    "document": "fax.tiff", "confirmation": fax["reference"],
                    "pages": sent["pages"], "seconds": None, "remote_id": None}  # a spool
    # folder confirms no call: the fax server's pages, seconds and remote id are
    # in tests/fax/test_fax_delivery_line.py
    assert sent["confirmation"] == f"sendq/{fax['id']}.json" and sent["pages"] >= 2
    assert dt.datetime.fromisoformat(sent["at"]) >= dt.datetime.fromisoformat(
        body["created_at"])


def test_held_then_rejected_with_the_clinicians_reason(client, auth, settings, db):
    p = Pipeline(settings, db=db)
    rid = _submit(client, auth, flagged())
    flow.build_plan(p, rid)
    decision = _get(client, auth, rid)["decision"]
    assert (decision["kind"], decision["label"]) == ("held_for_review", "Held for review")
    assert "checking the plan" in decision["message"]

    staff_actions.reject(p, rid, actor="user:physio", note=REASON)
    body = _get(client, auth, rid)
    assert body["decision"]["kind"] == "rejected"
    assert body["decision"]["reason"] == REASON
    assert body["decision"]["message"] == (
        "The clinic did not accept this referral. No exercise plan will be sent to the "
        "patient. You are sent a letter with the reason.")
    # the letter is not the plan: no proof of a plan sent
    _deliver_all(p, db, rid)
    body = _get(client, auth, rid)
    assert body["plan_sent_to_referrer"] is None
    assert {d["document"] for d in body["deliveries"]} == {"decline.tiff"}
    assert {d["status"] for d in body["deliveries"]} == {"sent"}
    assert body["status"] == "rejected"
    letter = client.get(f"/api/v1/referrals/{rid}/documents/decline.pdf", headers=auth)
    assert letter.status_code == 200 and letter.data.startswith(b"%PDF")


def test_rejected_at_intake_gives_the_rules_message(client, auth, app, settings, db):
    app.extensions["refflow.find_problems"] = lambda referral: [
        {"code": "out_of_area", "severity": "reject", "source": "clinic",
         "message": "The clinic only takes referrals from its own county."}]
    rid = _submit(client, auth, routine())
    decision = _get(client, auth, rid)["decision"]
    assert decision["kind"] == "rejected"
    assert decision["reason"] == "The clinic only takes referrals from its own county."


def test_do_not_exercise_says_what_the_referrer_must_do_first(client, auth, settings, db):
    p = Pipeline(settings, db=db)
    rid = _submit(client, auth, red_flag())
    flow.build_plan(p, rid)
    _deliver_all(p, db, rid)
    body = _get(client, auth, rid)
    assert body["status"] == "completed"
    decision = body["decision"]
    assert (decision["kind"], decision["label"]) == ("do_not_exercise", "Do not exercise yet")
    assert "Please see the patient" in decision["message"]
    assert "sent" not in decision["message"].split(".")[0]  # never "everything was delivered"
    assert any("before any exercise" in text for text in decision["before_exercise"])
    assert "Stone" not in str(decision) and "Mary" not in str(decision)
    # the summary fax went to the referrer: the proof is there
    assert body["plan_sent_to_referrer"]["channel"] == "fax"


def test_cancelled(client, auth):
    rid = _submit(client, auth, routine())
    r = client.post(f"/api/v1/referrals/{rid}/cancel", json={"reason": "patient moved"},
                    headers=auth)
    assert r.status_code == 200
    decision = _get(client, auth, rid)["decision"]
    assert decision == {"kind": "cancelled", "label": "Cancelled", "reason": None,
                        "before_exercise": [],
                        "message": "This referral was cancelled. Nothing more will be sent "
                                   "for it."}


@pytest.mark.parametrize("status", ["planning", "failed"])
def test_no_plan_yet_is_pending(client, auth, db, status):
    rid = _submit(client, auth, routine())
    with db.session() as session:
        session.get(Referral, rid).status = status
    assert _get(client, auth, rid)["decision"]["kind"] == "pending"


def test_staff_see_the_proof_and_the_plans_overdue_for_the_referrer(
        client, auth, app, settings, db):
    from web_forms import PASSWORD, sign_in

    from refflow.accounts.users import create_user
    from refflow.db.models import utcnow

    p = Pipeline(settings, db=db)
    sent = _submit(client, auth, routine(external_id="EHR-SENT"))
    flow.build_plan(p, sent)
    _deliver_all(p, db, sent)
    held = _submit(client, auth, flagged())
    flow.build_plan(p, held)
    fresh = _submit(client, auth, routine(external_id="EHR-FRESH"))
    rejected = _submit(client, auth, flagged())
    flow.build_plan(p, rejected)
    staff_actions.reject(p, rejected, actor="user:physio", note=REASON)
    long_ago = utcnow() - dt.timedelta(days=31)
    with db.session() as session:
        for rid in (sent, held, rejected):
            session.get(Referral, rid).created_at = long_ago
        create_user(session, "pt@clinic.example", PASSWORD, role="staff")
    sign_in(client, "pt@clinic.example")

    page = client.get("/").text
    section = page[page.index('id="plan-overdue"'):page.index('id="list-h"')]
    assert "Plan not yet sent to the referrer (over 30 days): 1" in section
    assert f"/referrals/{held}#deliveries" in section
    for other in (sent, fresh, rejected):  # sent, too recent, or never to be sent
        assert other not in section

    app.extensions["refflow.settings"] = dataclasses.replace(settings, plan_due_days=0)
    section = client.get("/").text
    section = section[section.index('id="plan-overdue"'):section.index('id="list-h"')]
    assert "(over 0 days): 2" in section and fresh in section and held in section

    staff_page = client.get(f"/referrals/{sent}").text
    fax = _get(client, auth, sent)["plan_sent_to_referrer"]
    assert "Plan sent to the referrer" in staff_page
    assert f"confirmation <code>{fax['confirmation']}</code>" in staff_page
    assert f"{fax['pages']} pages" in staff_page
    assert "Plan not sent to the referrer yet." in client.get(f"/referrals/{held}").text
