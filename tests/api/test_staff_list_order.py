"""The dashboard's lists at any volume (issue 20), on SQLite and PostgreSQL:
urgent referrals first in "Waiting for review", the patient's date of birth
beside every name (three "Gonzalez, Maria" told apart), and the searches and
filters that now run on their own indexes still find what they did."""

from __future__ import annotations

import re

import pytest
from sample_referrals import flagged, routine
from web_forms import PASSWORD, token

from refflow.accounts.users import create_user
from refflow.pipeline import flow
from refflow.pipeline.context import Pipeline
from refflow.referrals import states

STAFF = "physio@clinic.example"


@pytest.fixture
def staff(client, db):
    with db.session() as session:
        create_user(session, STAFF, PASSWORD, role="staff")
    signed_in = client.post("/login", data={"email": STAFF, "password": PASSWORD,
                                            "csrf_token": token(client.get("/login").text)})
    assert signed_in.status_code == 302
    return token(client.get("/").text)


@pytest.fixture
def p(settings, db):
    return Pipeline(settings, db=db, publish=lambda task, args: None)


def _submit(client, auth, body) -> str:
    answer = client.post("/api/v1/referrals", json=body, headers=auth)
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["id"]


def _held(client, auth, p, *, name: str, urgency: str, birth: str = "1950-01-01") -> str:
    body = flagged()
    body["external_id"] = f"EHR-{name}"
    body["patient"] = dict(body["patient"], given_name=name, birth_date=birth)
    body["urgency"] = urgency
    rid = _submit(client, auth, body)
    assert flow.build_plan(p, rid) == states.NEEDS_REVIEW
    return rid


def _section(page: str, heading_id: str) -> str:
    start = page.index(f'id="{heading_id}"')
    return page[start:page.index("</section>", start)]


def test_urgent_referrals_come_first_in_waiting_for_review(client, auth, p, staff):
    _held(client, auth, p, name="Routineone", urgency="routine")
    _held(client, auth, p, name="Urgentone", urgency="urgent")
    _held(client, auth, p, name="Routinetwo", urgency="routine")
    _held(client, auth, p, name="Urgenttwo", urgency="urgent")
    review = _section(client.get("/").text, "review-h")
    names = re.findall(r"Stone, (\w+)</a>", review)
    # urgent first, each group longest waiting first
    assert names == ["Urgentone", "Urgenttwo", "Routineone", "Routinetwo"]
    assert review.count("badge urgent") == 2
    assert "Waiting for review (4)" in review


def test_date_of_birth_beside_each_name_tells_namesakes_apart(client, auth, p, staff):
    births = ["1948-02-03", "1961-07-30", "1979-12-24"]
    for birth in births:
        body = routine(external_id=f"EHR-{birth}")
        body["patient"] = dict(body["patient"], given_name="Maria", family_name="Gonzalez",
                               birth_date=birth)
        _submit(client, auth, body)
    listed = _section(client.get("/").text, "list-h")
    rows = re.findall(r"Gonzalez, Maria</a>\s*<span class=\"dob\">DOB ([\d-]+)</span>", listed)
    assert sorted(rows) == births
    held = _held(client, auth, p, name="Ann", urgency="routine", birth="1955-05-06")
    review = _section(client.get("/").text, "review-h")
    assert re.search(rf'{held}">Stone, Ann</a>\s*<span class="dob">DOB 1955-05-06</span>',
                     review)


def test_search_and_failed_filter_find_their_referrals(client, auth, p, staff):
    for given, family in (("Maria", "Gonzalez"), ("Mario", "Gonzales"), ("Ann", "Lee")):
        body = routine(external_id=f"EHR-{given}-{family}")
        body["patient"] = dict(body["patient"], given_name=given, family_name=family)
        _submit(client, auth, body)

    def listed(**filters) -> list[str]:
        client.post("/queue/filters", data={"csrf_token": staff, **filters})
        return sorted(re.findall(r'>(\w+, \w+)</a>\s*<span class="dob">',
                                 _section(client.get("/").text, "list-h")))

    assert listed(q="gonzal mari") == ["Gonzales, Mario", "Gonzalez, Maria"]
    assert listed(q="GONZALEZ maria") == ["Gonzalez, Maria"]
    assert listed(q="ehr-ann") == ["Lee, Ann"]
    assert listed(q="100%") == []
    assert listed(failed="1") == []
    rid = _submit(client, auth, routine(external_id="EHR-FAILING"))
    with p.db.session() as session:  # a delivery that failed for good, as the worker leaves it
        from refflow.db.models import Delivery

        session.add(Delivery(referral_id=rid, channel="fax", document="fax.tiff",
                             target="+1 763 555 0198", status="failed",
                             last_error="no answer"))
    assert listed(failed="1") == ["Stone, Mary"]
    assert "1 failed" in _section(client.get("/").text, "list-h")
