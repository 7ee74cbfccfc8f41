"""The referring office's side of the site (Flask test client, on SQLite and
PostgreSQL): where a signed-in office lands, and the portal form's messages."""

from __future__ import annotations

import re

import pytest
import web_forms
from sqlalchemy import select
from web_forms import PASSWORD, token

from refflow.accounts.users import create_user
from refflow.db.models import Referral


def sign_in(client, email: str):
    r = web_forms.sign_in(client, email)
    assert r.status_code == 302
    return r


@pytest.fixture
def people(db, make_practice):
    make_practice("North")
    with db.session() as s:
        create_user(s, "staff@clinic.example", PASSWORD, role="staff")
        create_user(s, "north@practice.example", PASSWORD, role="practice", practice="North")


def test_the_front_page_sends_a_practice_user_to_the_portal(app, people):
    office, staff, visitor = app.test_client(), app.test_client(), app.test_client()
    sign_in(office, "north@practice.example")
    r = office.get("/")
    assert r.status_code == 302 and r.headers["Location"] == "/portal/"
    assert office.get(r.headers["Location"]).status_code == 200
    # the other staff pages still answer as if they did not exist
    assert office.get("/queue/fragment").status_code == 404
    # staff stay on the dashboard; signed-out visitors still go to sign in
    sign_in(staff, "staff@clinic.example")
    r = staff.get("/")
    assert r.status_code == 200 and "Referral queue" in r.text
    r = visitor.get("/")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")


def _errors(page: str) -> dict[str, str]:
    """Each field's error next to it, by input id."""
    return {m.group(1): " ".join(m.group(2).split()) for m in re.finditer(
        r'class="field-error" id="(f-[^"]+)-error"><span class="visually-hidden">Error:</span>'
        r"(.*?)</span>", page, re.S)}


def _summary(page: str) -> list[str]:
    box = page.split('id="error-summary"', 1)[1].split("</div>", 1)[0]
    return [" ".join(re.sub(r"<[^>]+>", "", li).split())
            for li in re.findall(r"<li>(.*?)</li>", box, re.S)]


def _form(client, **fields) -> dict:
    page = client.get("/portal/referrals/new")
    return {"csrf_token": token(page.text), "patient.given_name": "Ann",
            "patient.family_name": "Lee", "patient.birth_date": "1951-03-02",
            "patient.sex": "female", **fields}


def test_a_diagnosis_text_without_a_code_is_enough_as_the_schema_says(client, people, db):
    sign_in(client, "north@practice.example")
    # neither: the message says what is needed (a code or a text), not "required"
    r = client.post("/portal/referrals/new", data=_form(client))
    assert r.status_code == 422
    error = _errors(r.text)["f-diagnosis-codes"]
    assert "required" not in error.lower()
    assert "code" in error and "text" in error
    # the text alone is accepted
    r = client.post("/portal/referrals/new",
                    data=_form(client, **{"diagnosis.codes": "",
                                          "diagnosis.text": "postmenopausal osteoporosis"}))
    assert r.status_code == 302, _errors(r.text)
    with db.session() as s:
        row = s.scalar(select(Referral))
        assert row.payload["diagnosis"] == {"codes": [], "text": "postmenopausal osteoporosis"}


def test_number_errors_name_the_allowed_range_in_plain_words(client, people):
    sign_in(client, "north@practice.example")
    r = client.post("/portal/referrals/new", data=_form(client, **{
        "diagnosis.codes": "M81.0",
        "clinical.pain.score": "11",
        "clinical.t_score": "-9",
        "clinical.frax.hip": "minus one",
        "clinical.falls_last_12_months": "2.5",
        "clinical.blood_pressure.systolic": "400",
        "clinical.blood_pressure.diastolic": "80"}))
    assert r.status_code == 422
    assert "Input should be" not in r.text
    errors = _errors(r.text)
    assert errors["f-clinical-pain-score"] == "Enter a whole number from 0 to 10."
    assert errors["f-clinical-t_score"] == "Enter a number from -7 to 4."
    assert errors["f-clinical-frax-hip"] == "Enter a number from 0 to 100."
    assert errors["f-clinical-falls_last_12_months"] == "Enter a whole number from 0 to 365."
    assert errors["f-clinical-blood_pressure-systolic"] == "Enter a whole number from 50 to 300."
    # the summary keeps each field's name
    summary = _summary(r.text)
    assert "Pain score (0–10): Enter a whole number from 0 to 10." in summary
    assert "Lowest T-score: Enter a number from -7 to 4." in summary


def test_the_error_summary_follows_the_form_and_names_each_field(client, people):
    sign_in(client, "north@practice.example")
    r = client.post("/portal/referrals/new", data=_form(client, **{
        "patient.given_name": "",
        "patient.phone": "555",
        "diagnosis.codes": "M81.0",
        "referrer.phone": "12",
        "clinical.fracture_history": "none",  # a form-only error, found before the schema's
        "clinical.fractures.0.site": "hip",
        "clinical.pain.score": "11"}))
    assert r.status_code == 422
    assert _summary(r.text) == [
        "Given name: This is required.",
        "Phone (patient): Not a valid phone number",
        "Phone (referring clinician): Not a valid phone number",
        "Fractures since age 50: You chose None but described a fracture",
        "Pain score (0–10): Enter a whole number from 0 to 10.",
    ]
    # each line leads to its own input, which carries the same message
    box = r.text.split('id="error-summary"', 1)[1].split("</div>", 1)[0]
    links = re.findall(r'<a href="#([^"]+)">', box)
    assert links == ["f-patient-given_name", "f-patient-phone", "f-referrer-phone",
                     "f-clinical-fracture_history", "f-clinical-pain-score"]
    errors = _errors(r.text)
    assert list(errors) == links  # the messages beside the fields, in the same order
    for line, link in zip(_summary(r.text), links, strict=True):
        assert line.endswith(errors[link])
