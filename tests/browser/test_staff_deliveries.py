"""What staff see of a delivery that is waiting or in doubt, and what they can
do: "next attempt at … · Send now", and "may have been sent — send again"."""

from __future__ import annotations

import datetime as dt

from sample_referrals import routine
from sqlalchemy import select
from web_forms import PASSWORD, sign_in, token

from refflow.accounts.users import create_user
from refflow.db.models import Delivery, utcnow
from refflow.pipeline import flow
from refflow.pipeline.context import Pipeline


def _delivering(client, auth, settings, db) -> str:
    r = client.post("/api/v1/referrals", json=routine(), headers=auth)
    rid = r.get_json()["id"]
    assert flow.build_plan(Pipeline(settings, db=db), rid) == "delivering"
    return rid


def test_staff_see_a_waiting_delivery_and_send_it_now(client, auth, settings, db):
    rid = _delivering(client, auth, settings, db)
    later = utcnow() + dt.timedelta(minutes=20)
    with db.session() as s:
        email = s.scalar(select(Delivery).where(Delivery.referral_id == rid,
                                                Delivery.channel == "email"))
        email.status, email.attempts, email.next_attempt_at = "retrying", 3, later
        email.last_error = "mail server: 421 try again later"
        email_id = email.id
        create_user(s, "pt@clinic.example", PASSWORD, role="staff")
    sign_in(client, "pt@clinic.example")
    page = client.get(f"/referrals/{rid}").text
    assert "Retrying" in page and "next attempt at" in page and "retried until" in page
    assert "Send now" in page
    r = client.post(f"/deliveries/{email_id}/retry", data={"csrf_token": token(page)})
    assert r.status_code in (302, 303)
    with db.session() as s:
        again = s.get(Delivery, email_id)
        assert (again.status, again.next_attempt_at) == ("pending", None)


def test_staff_see_an_email_in_doubt_and_decide_to_send_it_again(client, auth, settings, db):
    rid = _delivering(client, auth, settings, db)
    with db.session() as s:
        email = s.scalar(select(Delivery).where(Delivery.referral_id == rid,
                                                Delivery.channel == "email"))
        email.status, email.attempts = "in_doubt", 1
        email.last_error = "the worker sending this delivery stopped mid-send"
        email_id = email.id
        create_user(s, "pt@clinic.example", PASSWORD, role="staff")
    sign_in(client, "pt@clinic.example")
    page = client.get(f"/referrals/{rid}").text
    assert "May have been sent" in page and "may then" in page and "get it twice" in page
    r = client.post(f"/deliveries/{email_id}/retry", data={"csrf_token": token(page)})
    assert r.status_code in (302, 303)
    with db.session() as s:
        assert s.get(Delivery, email_id).status == "pending"
