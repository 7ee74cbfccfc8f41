"""The staff referral page shows every clinical fact the plan's rules read
(Flask test client, on SQLite and PostgreSQL): a clinician reviewing a flagged
plan sees the glucocorticoid's dose and start, when the pain began and whether
it followed minor trauma, and the rest of the falls and mobility answers."""

from __future__ import annotations

import html
import re

import pytest
from web_forms import PASSWORD, token

from refflow.accounts.users import create_user


def facts(page: str) -> dict[str, str]:
    """The page's clinical facts: each <dt> with its <dd>, tags dropped."""
    section = page.split('id="facts"', 1)[1].split("</section>", 1)[0]
    pairs = re.findall(r"<dt>(.*?)</dt>\s*<dd>(.*?)</dd>", section, re.S)
    return {html.unescape(k).strip(): " ".join(html.unescape(re.sub(r"<[^>]+>", " ", v)).split())
            for k, v in pairs}


@pytest.fixture
def staff_client(client, db, make_practice):
    _, key = make_practice("North")
    with db.session() as s:
        create_user(s, "staff@clinic.example", PASSWORD, role="staff")
    page = client.get("/login")
    r = client.post("/login", data={"email": "staff@clinic.example", "password": PASSWORD,
                                    "csrf_token": token(page.text)})
    assert r.status_code == 302
    client.api_key = key
    return client


def _submit(client, body: dict) -> str:
    r = client.post("/api/v1/referrals", json=body,
                    headers={"Authorization": f"Bearer {client.api_key}"})
    assert r.status_code == 202, r.text
    return r.get_json()["id"]


def test_staff_page_shows_the_facts_the_rules_use_for_the_example_referral(
        staff_client, referral_body):
    rid = _submit(staff_client, referral_body)
    r = staff_client.get(f"/referrals/{rid}")
    assert r.status_code == 200
    shown = facts(r.text)

    # the glucocorticoid's dose and start drive fracture_on_glucocorticoid /
    # glucocorticoid_upgrade
    assert shown["Medications"] == "alendronate; prednisone 10 mg/day since 2025-10-01"
    assert shown["Pain"] == "3/10, back, since 2026-04-20, not after minor trauma"
    assert shown["Fractures"] == "vertebral T12, 2026-05-01, low trauma"
    assert shown["Falls, last 12 months"] == "1"
    assert shown["Injurious fall"] == "no"
    assert shown["Fear of falling"] == "not known"
    assert shown["Mobility aid"] == "none"
    assert shown["Can rise from the floor"] == "yes"
    assert shown["Blood pressure"] == "138/84 mmHg"
    assert shown["Gym access"] == "no"
    assert shown["Exercise history"] == "walks twice a week"
    assert shown["Born"] == "1951-03-02"  # the clinic's date format, as elsewhere


def test_staff_page_says_not_known_rather_than_leaving_facts_out(staff_client,
                                                                  referral_body):
    clinical = {"pain": {"score": 6, "after_minor_trauma": True},
                "medications": [{"name": "prednisone", "since": "2026-01-15"}],
                "fractures": [{"site": "wrist", "low_trauma": False}]}
    rid = _submit(staff_client, {**referral_body, "external_id": "EHR-UNKNOWNS",
                                 "clinical": clinical})
    shown = facts(staff_client.get(f"/referrals/{rid}").text)
    assert shown["Pain"] == "6/10, since not known, after minor trauma"
    assert shown["Medications"] == "prednisone since 2026-01-15"
    assert shown["Fractures"] == "wrist, date not known, not low trauma"
    for name in ("Injurious fall", "Fear of falling", "Can rise from the floor",
                 "Blood pressure", "Mobility aid", "Falls, last 12 months", "T-score", "FRAX"):
        assert shown[name] == "not known", name


def test_staff_page_shows_structured_conditions_and_medication_courses(staff_client, referral_body):
    """A condition's status and date, and a steroid's route and courses, are what
    decided the plan (a resolved embolism is a caution, a burst is not daily use):
    the reviewer sees them, not a Python dict."""
    body = {**referral_body, "clinical": {
        **referral_body["clinical"],
        "conditions": ["hypertension",
                       {"text": "pulmonary embolism", "status": "resolved", "since": "2015-03-01"},
                       {"code": "M06.9", "status": "stable"}],
        "medications": [{"name": "prednisolone", "route": "eye"},
                        {"name": "prednisone", "course": "intermittent",
                         "courses": [{"start": "2026-03-01", "days": 5, "dose_mg_per_day": 40}]}]}}
    rid = _submit(staff_client, body)
    shown = facts(staff_client.get(f"/referrals/{rid}").text)
    assert shown["Conditions"] == ("hypertension; pulmonary embolism (resolved, since 2015-03-01); "
                                   "M06.9 (stable)")
    assert shown["Medications"] == ("prednisolone (eye); prednisone, courses: 5 days from "
                                    "2026-03-01 at 40 mg/day")
