"""CSRF on the JSON API for signed-in browsers (Flask's test client, SQLite and
PostgreSQL).

A staff member signed in through /login carries an ambient credential (the
session cookie) that a form on another origin of the same site can make the
browser send. So every state-changing /api/ request that the cookie
authenticates must carry the session's CSRF token in a header; a request with
a Bearer API key carries no ambient credential and needs none.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from web_forms import PASSWORD, token

from refflow.accounts.users import create_user
from refflow.db.models import AuditEntry, Delivery, Referral
from refflow.pipeline import flow

STAFF = "staff@clinic.example"


@pytest.fixture
def key(db, make_practice):
    _practice, api_key = make_practice("North")
    with db.session() as s:
        create_user(s, STAFF, PASSWORD, role="staff")
    return api_key


@pytest.fixture
def staff(client, key):
    """The test client signed in as staff through the sign-in form; returns the
    CSRF token a signed-in page carries."""
    page = client.get("/login")
    r = client.post("/login", data={"email": STAFF, "password": PASSWORD,
                                    "csrf_token": token(page.text)})
    assert r.status_code == 302
    return token(client.get("/").text)


def submit(client, key, body) -> str:
    r = client.post("/api/v1/referrals", json=body, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202, r.get_json()
    return r.get_json()["id"]


def held(app, client, key, referral_body) -> str:
    """A referral whose plan waits for a clinician (a recent vertebral fracture)."""
    body = dict(referral_body)
    body["diagnosis"] = {"codes": ["M81.0"], "text": "postmenopausal osteoporosis"}
    body["clinical"] = {**body["clinical"], "t_score": -3.1,
                        "fractures": [{"site": "vertebral", "level": "T12", "date": None,
                                       "low_trauma": True}]}
    rid = submit(client, key, body)
    assert flow.build_plan(app.extensions["refflow.pipeline"], rid) == "needs_review"
    return rid


def failed_delivery(db, rid: str) -> str:
    with db.session() as s:
        s.get(Referral, rid).status = "failed"
        delivery = Delivery(referral_id=rid, channel="email", document="handout",
                            target="mary@example.org", status="failed", attempts=5,
                            last_error="550 no such user")
        s.add(delivery)
        s.flush()
        return delivery.id


def status(db, rid: str) -> str:
    with db.session() as s:
        return s.get(Referral, rid).status


def audit_actions(db) -> list[str]:
    with db.session() as s:
        return s.scalars(select(AuditEntry.action)).all()


def assert_csrf_refused(r, code: str) -> None:
    assert r.status_code == 403, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    assert r.get_json() == {"error": {"code": code, "message": r.get_json()["error"]["message"],
                                      "fields": {}}}
    assert "CSRF" in r.get_json()["error"]["message"]


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_staff_review_with_the_session_cookie_needs_the_csrf_token(
        app, client, db, key, staff, referral_body, action):
    rid = held(app, client, key, referral_body)
    url = f"/api/v1/referrals/{rid}/{action}"

    # what a cross-site form can make the browser send: the cookie, no token
    assert_csrf_refused(client.post(url), "csrf_token_missing")
    assert_csrf_refused(client.post(url, data={"note": "forged"}), "csrf_token_missing")
    # the form field is not read on the API, only the header
    assert_csrf_refused(client.post(url, data={"csrf_token": staff}), "csrf_token_missing")
    assert_csrf_refused(client.post(url, json={"note": "forged"}), "csrf_token_missing")
    assert_csrf_refused(client.post(url, headers={"X-CSRFToken": "not-the-token"}),
                        "csrf_failed")
    # an empty Authorization header does not count as a key: the cookie is used
    assert_csrf_refused(client.post(url, headers={"Authorization": ""}), "csrf_token_missing")
    assert status(db, rid) == "needs_review"
    assert f"plan.{action}" not in audit_actions(db)

    r = client.post(url, json={"note": "seen in clinic"}, headers={"X-CSRFToken": staff})
    assert r.status_code == 200, r.get_json()
    expected = "planned" if action == "approve" else "rejected"
    assert r.get_json() == {"id": rid, "status": expected}
    assert status(db, rid) == expected
    assert client.get(f"/api/v1/referrals/{rid}").get_json()["status"] == expected


def test_staff_cancel_and_retry_with_the_session_cookie_need_the_csrf_token(
        client, db, key, staff, referral_body):
    rid = submit(client, key, referral_body)
    assert_csrf_refused(client.post(f"/api/v1/referrals/{rid}/cancel"), "csrf_token_missing")
    assert_csrf_refused(client.post(f"/api/v1/referrals/{rid}/cancel",
                                    json={"reason": "forged"},
                                    headers={"X-CSRF-Token": staff + "x"}), "csrf_failed")
    assert status(db, rid) == "received"
    assert "referral.cancel" not in audit_actions(db)
    r = client.post(f"/api/v1/referrals/{rid}/cancel", headers={"X-CSRF-Token": staff})
    assert r.status_code == 200 and r.get_json()["status"] == "cancelled"

    rid = submit(client, key, referral_body | {"external_id": "EHR-RETRY"})
    delivery_id = failed_delivery(db, rid)
    url = f"/api/v1/deliveries/{delivery_id}/retry"
    assert_csrf_refused(client.post(url), "csrf_token_missing")
    assert_csrf_refused(client.post(url, json={"target": "attacker@example.org"}),
                        "csrf_token_missing")
    with db.session() as s:
        delivery = s.get(Delivery, delivery_id)
        assert (delivery.status, delivery.target) == ("failed", "mary@example.org")
    assert status(db, rid) == "failed"
    r = client.post(url, json={"target": "mary@mail.example.org"},
                    headers={"X-CSRFToken": staff})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "pending"
    assert status(db, rid) == "delivering"


def test_reads_with_the_session_cookie_need_no_token(client, key, staff, referral_body):
    rid = submit(client, key, referral_body)
    assert client.get(f"/api/v1/referrals/{rid}").status_code == 200
    assert client.get("/api/v1/queue").status_code == 200
    assert client.head(f"/api/v1/referrals/{rid}").status_code == 200


def test_a_token_from_another_session_is_refused(app, client, db, key, staff, referral_body):
    other = app.test_client()
    with db.session() as s:
        create_user(s, "other@clinic.example", PASSWORD, role="staff")
    page = other.get("/login")
    other.post("/login", data={"email": "other@clinic.example", "password": PASSWORD,
                               "csrf_token": token(page.text)})
    their_token = token(other.get("/").text)
    rid = submit(client, key, referral_body)
    assert_csrf_refused(client.post(f"/api/v1/referrals/{rid}/cancel",
                                    headers={"X-CSRFToken": their_token}), "csrf_failed")
    assert status(db, rid) == "received"


def test_bearer_key_requests_need_no_token(client, db, key, staff, referral_body):
    """A key carries no ambient credential: no token, even with a session cookie
    in the same client (the key, not the cookie, authenticates the request)."""
    rid = submit(client, key, referral_body)
    r = client.post(f"/api/v1/referrals/{rid}/cancel", json={"reason": "duplicate"},
                    headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "cancelled"
    assert status(db, rid) == "cancelled"


def test_bearer_key_cancel_without_any_cookie(app, db, key, referral_body):
    client = app.test_client()
    rid = submit(client, key, referral_body)
    r = client.post(f"/api/v1/referrals/{rid}/cancel", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.get_json()["status"] == "cancelled"


def test_without_a_session_the_answer_is_still_401(app, db, key, referral_body):
    client = app.test_client()
    rid = submit(client, key, referral_body)
    r = client.post(f"/api/v1/referrals/{rid}/approve")
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
    assert status(db, rid) == "received"


def test_signed_in_practice_user_needs_the_token_too(client, db, key, referral_body):
    with db.session() as s:
        create_user(s, "north@practice.example", PASSWORD, role="practice", practice="North")
    page = client.get("/login")
    client.post("/login", data={"email": "north@practice.example", "password": PASSWORD,
                                "csrf_token": token(page.text)})
    page_token = token(client.get("/portal/").text)
    rid = submit(client, key, referral_body)
    assert_csrf_refused(client.post(f"/api/v1/referrals/{rid}/cancel"), "csrf_token_missing")
    assert_csrf_refused(client.post("/api/v1/referrals", json=referral_body),
                        "csrf_token_missing")
    assert status(db, rid) == "received"
    r = client.post(f"/api/v1/referrals/{rid}/cancel", headers={"X-CSRFToken": page_token})
    assert r.status_code == 200 and r.get_json()["status"] == "cancelled"
