"""Plan versions through the staff API (Flask's test client, SQLite and
PostgreSQL): PUT /api/v1/referrals/<id>/plan with If-Match makes a new
version; a stale one is 412, a broken safety rule 422 unless overridden;
approval releases the latest version and the documents are rendered from it."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader
from sample_referrals import flagged, routine
from sqlalchemy import select

from refflow.accounts.users import create_user
from refflow.db.models import AuditEntry, Document, PlanVersion, ReferralEvent
from refflow.pipeline import flow
from refflow.pipeline.stored_documents import document_bytes

STAFF = "physio@clinic.example"
PASSWORD = "correct horse battery staple"


def _token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.fixture
def key(db, make_practice):
    _practice, api_key = make_practice("North")
    with db.session() as s:
        create_user(s, STAFF, PASSWORD, role="staff")
    return api_key


@pytest.fixture
def staff(client, key):
    """Signed in as staff; the headers a JSON API call from the page sends."""
    page = client.get("/login")
    r = client.post("/login", data={"email": STAFF, "password": PASSWORD,
                                    "csrf_token": _token(page.text)})
    assert r.status_code == 302
    return {"X-CSRFToken": _token(client.get("/").text)}


@pytest.fixture
def held(app, client, key):
    r = client.post("/api/v1/referrals", json=flagged(),
                    headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202
    rid = r.get_json()["id"]
    assert flow.build_plan(app.extensions["refflow.pipeline"], rid) == "needs_review"
    return rid


def put(client, staff, rid, plan, *, version, reason="hip precautions", override=None):
    headers = dict(staff)
    if version is not None:
        headers["If-Match"] = f'"{version}"'
    return client.put(f"/api/v1/referrals/{rid}/plan", headers=headers,
                      json={"plan": plan, "reason": reason, "override": override})


def ids(plan) -> list[str]:
    return [e["id"] for e in plan["exercises"]]


def pdf_text(app, rid, name) -> str:
    p = app.extensions["refflow.pipeline"]
    with p.db.session() as s:
        content = document_bytes(p.store, s.scalar(select(Document).where(
            Document.referral_id == rid, Document.name == name)))
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    return " ".join(text.split())


def test_edit_override_approve_render(app, client, db, staff, held):
    rid = held
    r = client.get(f"/api/v1/referrals/{rid}/plan")
    assert r.status_code == 200 and r.headers["ETag"] == '"1"'
    v1 = r.get_json()
    assert v1["version"] == 1

    # remove one, add one from the catalogue, change a dose, a patient note
    sent = [{"id": i} for i in ids(v1) if i != "wall_push_up"] + [{"id": "calf_stretch_wall"}]
    sent[0]["dose"] = {"sets": 2, "reps": 10}
    note = "Keep your hip bent less than a right angle."
    r = put(client, staff, rid, {"exercises": sent, "patient_notes": [note]}, version=1)
    assert r.status_code == 200, r.get_json()
    assert r.headers["ETag"] == '"2"'
    v2 = r.get_json()
    assert v2["version"] == 2 and "wall_push_up" not in ids(v2) and v2["patient_notes"] == [note]

    # a change that breaks a hard rule: refused with the rule and its evidence ...
    bad = {"exercises": [{"id": i} for i in ids(v2)] + [{"id": "jump_rope"}]}
    r = put(client, staff, rid, bad, version=2, reason="patient skips at the gym")
    assert r.status_code == 422
    err = r.get_json()["error"]
    assert err["code"] == "safety_rule_broken"
    assert err["fields"]["exercises.jump_rope"].startswith("no_high_impact: High impact")
    # ... and kept with an override reason
    r = put(client, staff, rid, bad, version=2, reason="patient skips at the gym",
            override="supervised by the PT in clinic")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["overrides"][0]["rule"] == "no_high_impact"

    # the versions
    r = client.get(f"/api/v1/referrals/{rid}/plan/versions")
    assert r.status_code == 200 and r.headers["ETag"] == '"3"'
    items = r.get_json()["items"]
    assert [(i["version"], i["author"]) for i in items] == [(1, "engine"), (2, STAFF), (3, STAFF)]
    assert [i["current"] for i in items] == [False, False, True]
    r = client.get(f"/api/v1/referrals/{rid}/plan/versions/2")
    assert r.status_code == 200 and r.get_json()["version"] == 2
    assert client.get(f"/api/v1/referrals/{rid}/plan/versions/9").status_code == 404

    # approve: the latest version is released, with who approved it
    r = client.post(f"/api/v1/referrals/{rid}/approve", headers=staff, json={})
    assert r.status_code == 200, r.get_json()
    r = client.get(f"/api/v1/referrals/{rid}/plan")
    released = r.get_json()
    assert r.headers["ETag"] == '"3"'
    assert released["decision"] == "release" and released["approved"]["by"] == STAFF
    assert "jump_rope" in ids(released) and "wall_push_up" not in ids(released)
    # no more edits once released
    r = put(client, staff, rid, {"patient_notes": []}, version=3)
    assert r.status_code == 409

    assert flow.render_documents(app.extensions["refflow.pipeline"], rid) == "delivering"
    handout = pdf_text(app, rid, "handout.pdf")
    assert note in handout and "Jumping rope" in handout
    assert f"Approved by {STAFF}" in handout
    assert f"Approved by {STAFF}" in pdf_text(app, rid, "summary.pdf")
    chart = pdf_text(app, rid, "chart.pdf")  # the clinic's full record: rules and overrides
    assert f"approved by {STAFF}" in chart
    assert "no_high_impact" in chart and "supervised by the PT in clinic" in chart

    # the timeline shows every version and the override; the audit trail each edit
    with db.session() as s:
        events = s.execute(select(ReferralEvent.kind, ReferralEvent.reason)
                           .where(ReferralEvent.referral_id == rid)
                           .order_by(ReferralEvent.id)).all()
        stored = s.scalars(select(PlanVersion.version).where(PlanVersion.referral_id == rid)
                           .order_by(PlanVersion.version)).all()
        audit = s.scalars(select(AuditEntry.action).where(AuditEntry.referral_id == rid)).all()
    revised = [reason for kind, reason in events if kind == "plan_revised"]
    assert revised == ["version 2: hip precautions", "version 3: patient skips at the gym"]
    assert any(kind == "plan_override" and "no_high_impact" in reason
               and "supervised by the PT in clinic" in reason for kind, reason in events)
    assert stored == [1, 2, 3]
    assert audit.count("plan.revise") == 2


def test_two_concurrent_edits_the_second_gets_412(client, staff, held):
    v1 = client.get(f"/api/v1/referrals/{held}/plan").get_json()
    first = put(client, staff, held, {"patient_notes": ["first"]}, version=1)
    assert first.status_code == 200
    second = put(client, staff, held, {"patient_notes": ["second"]}, version=1)
    assert second.status_code == 412
    assert second.get_json()["error"]["code"] == "version_conflict"
    assert second.headers["ETag"] == '"2"'
    plan = client.get(f"/api/v1/referrals/{held}/plan").get_json()
    assert plan["patient_notes"] == ["first"] and v1["version"] == 1


def test_preconditions_and_errors(client, staff, held, key):
    r = put(client, staff, held, {"patient_notes": ["x"]}, version=None)
    assert r.status_code == 428 and r.get_json()["error"]["code"] == "precondition_required"
    r = put(client, staff, held, {"exercises": [{"id": "nope"}]}, version=1)
    assert r.status_code == 422 and "exercises[0].id" in r.get_json()["error"]["fields"]
    r = client.put(f"/api/v1/referrals/{held}/plan", headers={**staff, "If-Match": '"1"'},
                   json={"plan": {}, "reason": "x", "colour": 1})
    assert r.status_code == 422
    # a practice cannot edit
    r = client.put(f"/api/v1/referrals/{held}/plan",
                   headers={"Authorization": f"Bearer {key}", "If-Match": '"1"'},
                   json={"plan": {"patient_notes": ["x"]}, "reason": "x"})
    assert r.status_code == 403
    # the session needs its CSRF token
    r = client.put(f"/api/v1/referrals/{held}/plan", headers={"If-Match": '"1"'},
                   json={"plan": {"patient_notes": ["x"]}, "reason": "x"})
    assert r.status_code == 403


def test_a_released_plan_is_not_edited(app, client, staff, key):
    r = client.post("/api/v1/referrals", json=routine(),
                    headers={"Authorization": f"Bearer {key}"})
    rid = r.get_json()["id"]
    flow.build_plan(app.extensions["refflow.pipeline"], rid)
    r = put(client, staff, rid, {"patient_notes": ["x"]}, version=1)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "invalid_state"
