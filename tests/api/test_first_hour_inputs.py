"""Issue 21, "input a clinic would question" (SQLite and PostgreSQL):

- a birth date that makes the patient older than 120, or any of the
  referral's own dates before the patient was born, is refused naming it;
- an empty ``Idempotency-Key:`` header is a 400, not "no key" (also over a
  real HTTP connection, where an empty header reaches the server as sent);
- a JSON body that gives a key twice is a 422 naming the key's path;
- the same ``external_id`` from the same practice again (without an
  Idempotency-Key) is accepted, flagged as a possible duplicate linking the
  earlier referral, and held for a clinician; the portal warns the practice.
"""

from __future__ import annotations

import copy
import datetime as dt
import http.client
import json
import re
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from refflow.db.models import Referral
from refflow.pipeline import flow
from refflow.pipeline.context import Pipeline
from refflow.referrals import states

API = "/api/v1"


def post_text(client, auth, text: str, headers: dict | None = None):
    return client.post(f"{API}/referrals", data=text, content_type="application/json",
                       headers={**auth, **(headers or {})})


def today(settings) -> dt.date:
    return dt.datetime.now(ZoneInfo(settings.clinic_timezone)).date()


def error_of(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    error = response.get_json()["error"]
    if code:
        assert error["code"] == code, error
    return error


def years_before(day: dt.date, years: int) -> dt.date:
    return day.replace(year=day.year - years, day=min(day.day, 28))


# -- ages and dates -----------------------------------------------------------

def test_a_patient_older_than_120_is_refused(client, auth, referral_body, settings):
    body = copy.deepcopy(referral_body)
    body["patient"]["birth_date"] = (years_before(today(settings), 121)).isoformat()
    error = error_of(post_text(client, auth, json.dumps(body)), 422, "validation_failed")
    assert set(error["fields"]) == {"patient.birth_date"}
    assert "older than 120 years" in error["fields"]["patient.birth_date"]


def test_a_patient_of_119_is_accepted(client, auth, referral_body, settings):
    body = copy.deepcopy(referral_body)
    body["patient"]["birth_date"] = (years_before(today(settings), 119)).isoformat()
    assert post_text(client, auth, json.dumps(body)).status_code == 202


@pytest.mark.parametrize("where", ["fracture", "pain", "medication", "course"])
def test_a_date_before_the_patient_was_born_is_refused(client, auth, referral_body, where):
    body = copy.deepcopy(referral_body)
    body["patient"]["birth_date"] = "1950-06-01"
    before = "1949-12-31"
    clinical = body.setdefault("clinical", {})
    if where == "fracture":
        clinical["fractures"] = [{"site": "wrist", "date": before}]
        path = "clinical.fractures.0.date"
    elif where == "pain":
        clinical["pain"] = {"score": 3, "since": before}
        path = "clinical.pain.since"
    elif where == "medication":
        clinical["medications"] = [{"name": "alendronate", "since": before}]
        path = "clinical.medications.0.since"
    else:
        clinical["medications"] = [{"name": "prednisone", "courses": [
            {"start": "2020-01-01", "days": 5}, {"start": before, "days": 5}]}]
        path = "clinical.medications.0.courses.1.start"
    error = error_of(post_text(client, auth, json.dumps(body)), 422, "validation_failed")
    message = " ".join(error["fields"].values())
    assert "before the birth date" in message and path in message, error


# -- Idempotency-Key ---------------------------------------------------------------

def test_an_empty_idempotency_key_is_400(client, auth, referral_body, db):
    response = post_text(client, auth, json.dumps(referral_body), {"Idempotency-Key": ""})
    error = error_of(response, 400, "invalid_idempotency_key")
    assert "Idempotency-Key" in error["message"]
    with db.session() as s:
        assert s.query(Referral).count() == 0


def test_an_empty_idempotency_key_over_http_is_400(live_server, auth, referral_body):
    """Through a real socket, as curl -H 'Idempotency-Key;' sends it."""
    url = urlsplit(live_server)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.putrequest("POST", f"{API}/referrals")
    for name, value in {**auth, "Content-Type": "application/json",
                        "Idempotency-Key": ""}.items():
        conn.putheader(name, value)
    body = json.dumps(referral_body).encode()
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    answer = conn.getresponse()
    payload = json.loads(answer.read())
    assert answer.status == 400, payload
    assert payload["error"]["code"] == "invalid_idempotency_key"


# -- duplicate keys ----------------------------------------------------------------

def test_a_key_given_twice_is_refused_naming_it(client, auth, referral_body, db):
    text = json.dumps(referral_body)
    patient = json.dumps(referral_body["patient"])
    twice = patient[:-1] + ', "family_name": "Other"}'
    text = text.replace(patient, twice, 1)
    assert twice in text
    error = error_of(post_text(client, auth, text), 422)
    assert error["fields"] == {"patient.family_name": "given more than once"}
    assert "patient.family_name" in error["message"]
    with db.session() as s:
        assert s.query(Referral).count() == 0


def test_a_top_level_key_given_twice_is_refused(client, auth, referral_body):
    text = json.dumps(referral_body)[:-1] + ', "urgency": "urgent", "urgency": "routine"}'
    error = error_of(post_text(client, auth, text), 422)
    assert set(error["fields"]) == {"urgency"}


def test_the_same_key_in_two_objects_is_fine(client, auth, referral_body):
    body = copy.deepcopy(referral_body)
    body["referrer"]["phone"] = body["patient"].get("phone", "+17635550100")
    assert post_text(client, auth, json.dumps(body)).status_code == 202


# -- the same external_id twice ----------------------------------------------------

def test_the_same_external_id_again_is_accepted_and_flagged(client, auth, referral_body, db,
                                                               settings):
    body = copy.deepcopy(referral_body)
    body["external_id"] = "EHR-DUP-1"
    first = post_text(client, auth, json.dumps(body))
    assert first.status_code == 202
    assert "problems" not in first.get_json()
    second = post_text(client, auth, json.dumps(body))
    assert second.status_code == 202
    answer = second.get_json()
    assert answer["id"] != first.get_json()["id"]
    (problem,) = answer["problems"]
    assert problem["code"] == "possible_duplicate"
    assert problem["duplicate_of"] == first.get_json()["id"]
    assert problem["severity"] == "needs_review"
    detail = client.get(f"{API}/referrals/{answer['id']}", headers=auth).get_json()
    assert [p["duplicate_of"] for p in detail["problems"]] == [first.get_json()["id"]]
    # the worker holds it for a clinician; the first one goes on as usual
    pipeline = Pipeline(settings, db=db)
    assert flow.build_plan(pipeline, answer["id"]) == states.NEEDS_REVIEW
    flow.build_plan(pipeline, first.get_json()["id"])
    with db.session() as s:
        def held_for(rid):
            return {f["code"] for f in s.get(Referral, rid).plan.body["flags"]
                    if f["severity"] == "needs_review"}
        assert "possible_duplicate" in held_for(answer["id"])
        assert "possible_duplicate" not in held_for(first.get_json()["id"])
    # an idempotent replay is the same referral, not a duplicate
    keyed = post_text(client, auth, json.dumps(body), {"Idempotency-Key": "k-1"})
    again = post_text(client, auth, json.dumps(body), {"Idempotency-Key": "k-1"})
    assert again.get_json()["id"] == keyed.get_json()["id"]


def test_another_practices_external_id_is_not_a_duplicate(client, auth, referral_body,
                                                          make_practice):
    body = copy.deepcopy(referral_body)
    body["external_id"] = "EHR-SHARED"
    assert post_text(client, auth, json.dumps(body)).status_code == 202
    other = {"Authorization": f"Bearer {make_practice('South Clinic')[1]}"}
    answer = post_text(client, other, json.dumps(body)).get_json()
    assert "problems" not in answer


def _signed_in(app, email: str, password: str):
    browser = app.test_client()
    page = browser.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = browser.post("/login", data={"email": email, "password": password,
                                          "csrf_token": token})
    assert answer.status_code == 302
    return browser


def test_staff_and_portal_see_the_duplicate(app, client, auth, referral_body, practice, db):
    """The staff page links the earlier referral; the practice's portal warns."""
    from refflow.accounts.users import create_user

    body = copy.deepcopy(referral_body)
    body["external_id"] = "EHR-DUP-2"
    first = post_text(client, auth, json.dumps(body)).get_json()["id"]
    second = post_text(client, auth, json.dumps(body)).get_json()["id"]
    with db.session() as s:
        create_user(s, "staff@clinic.example.org", "staff-password-1", role="staff")
        create_user(s, "office@practice.example.org", "office-password-1", role="practice",
                    practice=practice[0])
    staff = _signed_in(app, "staff@clinic.example.org", "staff-password-1")
    page = staff.get(f"/referrals/{second}").get_data(as_text=True)
    assert "Possible duplicate" in page and f'href="/referrals/{first}"' in page
    office = _signed_in(app, "office@practice.example.org", "office-password-1")
    portal = office.get(f"/portal/referrals/{second}").get_data(as_text=True)
    assert "data-duplicate-warning" in portal and f'href="/portal/referrals/{first}"' in portal
    assert "data-duplicate-warning" not in office.get(
        f"/portal/referrals/{first}").get_data(as_text=True)
