"""The staff fax inbox over the JSON API (``/api/v1/faxes``), on SQLite and
PostgreSQL: staff sign in through the sign-in form and send the session's
CSRF token on changes, as the dashboard's script does."""

from __future__ import annotations

import copy
import logging

import pytest
from sqlalchemy import select
from web_forms import PASSWORD, token

from refflow.accounts.users import create_user
from refflow.db.models import AuditEntry, ReceivedFax, Referral
from refflow.faxin import inbox, reading

STAFF = "physio@clinic.example"
CALLER = "+1 763 555 0142"


@pytest.fixture
def staff(client, db):
    """The test client signed in as staff; returns the headers a change sends."""
    with db.session() as session:
        create_user(session, STAFF, PASSWORD, role="staff")
    page = client.get("/login")
    signed_in = client.post("/login", data={"email": STAFF, "password": PASSWORD,
                                            "csrf_token": token(page.text)})
    assert signed_in.status_code == 302
    return {"X-CSRFToken": token(client.get("/").text)}


@pytest.fixture
def p(app):
    return app.extensions["refflow.pipeline"]


@pytest.fixture
def read_fax(p, fax_document):
    """A plain fax (no form), received and read by the worker step."""

    def make(text: str, *, pages: int = 1, from_number: str | None = CALLER) -> str:
        stored = inbox.receive(p, fax_document(text, pages=pages), source="cli",
                               from_number=from_number)
        assert inbox.read(p, stored.fax_id) == "read"
        return stored.fax_id

    return make


@pytest.fixture
def read_form(p, faxed_form):
    """refflow's referral form, filled in, faxed by the practice, received and read."""

    def make(practice_id: str | None, *, seed: int = 3, from_number: str | None = None) -> str:
        stored = inbox.receive(p, faxed_form(seed, practice_id=practice_id), source="cli",
                               from_number=from_number)
        assert inbox.read(p, stored.fax_id) == "read"
        return stored.fax_id

    return make


def test_staff_list_and_read_a_fax_with_its_pages_text_fields_and_practice(
        client, staff, read_fax, read_form, faxed_form, make_practice, db):
    practice_id, _ = make_practice("Lakeside Family Medicine", fax=CALLER)
    form_id = read_form(practice_id)
    letter = read_fax("Discharge letter from the hospital", pages=2, from_number=None)

    listed = client.get("/api/v1/faxes")
    assert listed.status_code == 200
    items = listed.get_json()["items"]
    assert [i["id"] for i in items] == [letter, form_id]
    assert listed.get_json()["next_cursor"] is None
    assert items[1]["practice"] == {"id": practice_id, "name": "Lakeside Family Medicine",
                                    "matched_by": "form"}
    assert (items[1]["page_count"], items[1]["status"], items[1]["read"]) == (1, "read", True)
    assert items[0]["practice"] is None and items[0]["from_number"] is None

    detail = client.get(f"/api/v1/faxes/{form_id}")
    assert detail.status_code == 200 and detail.headers["Cache-Control"] == "no-store"
    fax = detail.get_json()
    assert fax["form"] == {"form": "referral", "version": 1, "practice_id": practice_id,
                           "page": 0}
    values = faxed_form.values(3)
    family = fax["fields"]["patient.family_name"]
    assert family["value"] == values["patient.family_name"] and 0 < family["confidence"] <= 1
    assert fax["draft"]["patient"]["family_name"] == values["patient.family_name"]
    assert fax["reading_error"] is None and fax["pages"][0]["text"]

    pages = client.get(f"/api/v1/faxes/{letter}").get_json()["pages"]
    assert [(pg["number"], pg["href"], f"Page {pg['number']} of 2" in pg["text"])
            for pg in pages] == [(1, f"/api/v1/faxes/{letter}/pages/1.png", True),
                                 (2, f"/api/v1/faxes/{letter}/pages/2.png", True)]
    assert all(0.5 < pg["confidence"] <= 1 for pg in pages)
    png = client.get(pages[1]["href"])
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert png.data.startswith(b"\x89PNG") and png.headers["Cache-Control"] == "no-store"
    for missing in ("3", "0", "99999", "x"):
        assert client.get(f"/api/v1/faxes/{letter}/pages/{missing}.png").status_code == 404
    assert client.get("/api/v1/faxes/00000000-0000-4000-8000-000000000000").status_code == 404

    with db.session() as session:
        audit = session.execute(select(AuditEntry.action, AuditEntry.detail).where(
            AuditEntry.action.like("fax.%"), AuditEntry.action != "fax.receive")
            .order_by(AuditEntry.id)).all()
    assert [tuple(a) for a in audit] == [
        ("fax.list", "all faxes"), ("fax.view", f"fax:{form_id}"),
        ("fax.view", f"fax:{letter}"), ("fax.page", f"fax:{letter} page 2")]


def test_the_list_filters_by_status_and_pages(client, staff, read_fax, p):
    ids = [read_fax(f"fax {n}") for n in range(3)]
    inbox.archive(p, ids[0], "advertising", actor="user:x")
    page = client.get("/api/v1/faxes?status=read&limit=1").get_json()
    assert [i["id"] for i in page["items"]] == [ids[2]]
    rest = client.get(page["links"]["next"]).get_json()
    assert [i["id"] for i in rest["items"]] == [ids[1]] and rest["next_cursor"] is None
    archived = client.get("/api/v1/faxes?status=archived").get_json()["items"]
    assert [(i["id"], i["archived_reason"]) for i in archived] == [(ids[0], "advertising")]
    for bad in ("status=lost", "limit=0", "limit=x", "cursor=bm9wZQ"):
        response = client.get(f"/api/v1/faxes?{bad}")
        assert response.status_code == 400, bad
        assert response.get_json()["error"]["fields"], bad


def test_a_practice_key_cannot_read_faxes(client, auth, read_fax):
    fax_id = read_fax("for staff only")
    for path in ("/api/v1/faxes", f"/api/v1/faxes/{fax_id}",
                 f"/api/v1/faxes/{fax_id}/pages/1.png"):
        response = client.get(path, headers=auth)
        assert response.status_code == 403, path
        assert response.get_json()["error"]["code"] == "forbidden"
    response = client.post(f"/api/v1/faxes/{fax_id}/archive", json={"reason": "x"},
                           headers=auth)
    assert response.status_code == 403
    assert client.get("/api/v1/faxes").status_code == 401  # nobody signed in


def test_a_referral_created_from_the_reviewed_draft(client, staff, read_form, make_practice,
                                                    faxed_form, auth, db):
    practice_id, _ = make_practice("Lakeside Family Medicine", fax=CALLER)
    fax_id = read_form(practice_id)
    draft = client.get(f"/api/v1/faxes/{fax_id}").get_json()["draft"]
    draft["notes"] = "checked against the fax by the physio"  # what review changes
    response = client.post(f"/api/v1/faxes/{fax_id}/referral",
                           json={"practice_id": practice_id, "referral": draft},
                           headers=staff)
    assert response.status_code == 202, response.get_json()
    created = response.get_json()
    assert created["status"] == "received" and created["links"]["self"] == \
        response.headers["Location"] == f"/api/v1/referrals/{created['id']}"

    # it is in the referral list, with the fax attached, and its timeline says fax
    listed = client.get("/api/v1/referrals").get_json()["items"]
    assert created["id"] in [r["id"] for r in listed]
    referral = client.get(f"/api/v1/referrals/{created['id']}").get_json()
    assert referral["source"] == "fax"
    assert [(f["id"], f["kind"], f["pages"], f["href"]) for f in referral["faxes"]] == [
        (fax_id, "source", 1, f"/api/v1/faxes/{fax_id}")]
    assert [e["reason"] for e in referral["timeline"] if e["kind"] == "fax"] == [
        f"referral created from received fax {fax_id} (1 page)"]
    with db.session() as session:
        stored = session.get(Referral, created["id"])
        assert stored.practice_id == practice_id
        assert stored.payload["patient"]["family_name"] == \
            faxed_form.values(3)["patient.family_name"]
        assert stored.payload["notes"] == "checked against the fax by the physio"
    fax = client.get(f"/api/v1/faxes/{fax_id}").get_json()
    assert (fax["status"], fax["referral_id"]) == ("referral", created["id"])
    assert fax["handled_by"].startswith("user:") and fax["handled_at"]

    # another practice does not see it; the fax does not become a second referral
    assert client.get(f"/api/v1/referrals/{created['id']}", headers=auth).status_code == 404
    again = client.post(f"/api/v1/faxes/{fax_id}/referral",
                        json={"practice_id": practice_id, "referral": draft}, headers=staff)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "invalid_state"
    with db.session() as session:
        assert session.scalar(select(AuditEntry.referral_id).where(
            AuditEntry.action == "fax.referral")) == created["id"]


def test_the_matched_practice_is_the_default(client, staff, read_fax, make_practice,
                                             referral_body):
    practice_id, _ = make_practice("Lakeside Family Medicine", fax=CALLER)
    fax_id = read_fax("Referral")
    response = client.post(f"/api/v1/faxes/{fax_id}/referral",
                           json={"referral": referral_body}, headers=staff)
    assert response.status_code == 202, response.get_json()
    unknown = read_fax("No caller", from_number=None)
    response = client.post(f"/api/v1/faxes/{unknown}/referral",
                           json={"referral": referral_body}, headers=staff)
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == {"practice_id": "required"}
    assert client.get("/api/v1/referrals/" + client.get(
        f"/api/v1/faxes/{fax_id}").get_json()["referral_id"]).get_json()["source"] == "fax"


def test_a_bad_draft_is_422_naming_each_field_and_the_fax_stays_in_the_inbox(
        client, staff, read_fax, make_practice, referral_body, db):
    practice_id, _ = make_practice("Lakeside Family Medicine", fax=CALLER)
    fax_id = read_fax("Referral")
    draft = copy.deepcopy(referral_body)
    draft["patient"]["birth_date"] = "03/02/51"
    del draft["patient"]["family_name"]
    draft["referrer"]["fax"] = "12"
    response = client.post(f"/api/v1/faxes/{fax_id}/referral",
                           json={"practice_id": practice_id, "referral": draft}, headers=staff)
    assert response.status_code == 422
    fields = response.get_json()["error"]["fields"]
    assert {"patient.birth_date", "patient.family_name", "referrer.fax"} <= set(fields)
    assert "03/02/51" not in response.text
    cases = [
        ({"practice_id": practice_id}, {"referral": "required"}),
        ({"practice_id": "00000000-0000-4000-8000-000000000000", "referral": referral_body},
         {"practice_id": "no such practice"}),
        ({"practice_id": 7, "referral": referral_body}, {"practice_id": "must be text"}),
        ({"referral": referral_body, "extra": 1}, {"extra": "unknown field"}),
    ]
    for body, expected in cases:
        response = client.post(f"/api/v1/faxes/{fax_id}/referral", json=body, headers=staff)
        assert response.status_code == 422, body
        assert response.get_json()["error"]["fields"] == expected
    assert client.post(f"/api/v1/faxes/{fax_id}/referral", data="x", headers={
        **staff, "Content-Type": "text/plain"}).status_code == 415
    with db.session() as session:
        assert session.get(ReceivedFax, fax_id).status == "read"
    missing = client.post("/api/v1/faxes/00000000-0000-4000-8000-000000000000/referral",
                          json={"practice_id": practice_id, "referral": referral_body},
                          headers=staff)
    assert missing.status_code == 404


def test_attach_a_fax_to_an_existing_referral(client, staff, read_fax, auth, referral_body):
    referral_id = client.post("/api/v1/referrals", json=referral_body,
                              headers=auth).get_json()["id"]
    fax_id = read_fax("Lab results", pages=3)
    bad = client.post(f"/api/v1/faxes/{fax_id}/attach",
                      json={"referral_id": "00000000-0000-4000-8000-000000000000"},
                      headers=staff)
    assert bad.status_code == 422
    assert bad.get_json()["error"]["fields"] == {"referral_id": "no such referral"}
    assert client.post(f"/api/v1/faxes/{fax_id}/attach", json={},
                       headers=staff).get_json()["error"]["fields"] == {"referral_id": "required"}

    response = client.post(f"/api/v1/faxes/{fax_id}/attach", json={"referral_id": referral_id},
                           headers=staff)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"id": fax_id, "status": "attached",
                                   "referral_id": referral_id,
                                   "links": {"self": f"/api/v1/faxes/{fax_id}"}}
    referral = client.get(f"/api/v1/referrals/{referral_id}", headers=auth).get_json()
    assert [(f["id"], f["kind"]) for f in referral["faxes"]] == [(fax_id, "attached")]
    assert "source" not in referral
    assert [e["reason"] for e in referral["timeline"] if e["kind"] == "fax"] == [
        f"fax attached (3 pages): fax {fax_id}"]
    again = client.post(f"/api/v1/faxes/{fax_id}/attach", json={"referral_id": referral_id},
                        headers=staff)
    assert again.status_code == 409


def test_archive_needs_a_reason(client, staff, read_fax):
    fax_id = read_fax("Advertising")
    for body, field in (({}, "required"), ({"reason": ""}, "required"),
                        ({"reason": "   "}, "required"), ({"reason": None}, "required"),
                        ({"reason": 5}, "must be text"),
                        ({"reason": "x" * 501}, "at most 500 characters")):
        response = client.post(f"/api/v1/faxes/{fax_id}/archive", json=body, headers=staff)
        assert response.status_code == 422, body
        assert response.get_json()["error"]["fields"] == {"reason": field}, body
    response = client.post(f"/api/v1/faxes/{fax_id}/archive",
                           json={"reason": "advertising, not a referral"}, headers=staff)
    assert response.status_code == 200 and response.get_json()["status"] == "archived"
    fax = client.get(f"/api/v1/faxes/{fax_id}").get_json()
    assert fax["archived_reason"] == "advertising, not a referral"
    assert client.post(f"/api/v1/faxes/{fax_id}/archive", json={"reason": "again"},
                       headers=staff).status_code == 409


def test_a_signed_in_session_must_send_its_csrf_token(client, staff, read_fax):
    fax_id = read_fax("Referral")
    response = client.post(f"/api/v1/faxes/{fax_id}/archive", json={"reason": "junk"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "csrf_token_missing"


def test_an_unreadable_fax_is_shown_with_its_pages_and_the_error(client, staff, p,
                                                                  monkeypatch, fax_document):
    def broken(images, tessdata_dir=None):
        raise RuntimeError("tesseract crashed")

    monkeypatch.setattr(reading, "read_fax", broken)
    fax_id = inbox.receive(p, fax_document("crumpled", pages=2), source="cli").fax_id
    inbox.read(p, fax_id)
    fax = client.get(f"/api/v1/faxes/{fax_id}").get_json()
    assert fax["status"] == "read" and fax["reading_error"] == "RuntimeError"
    assert [(pg["number"], pg["text"]) for pg in fax["pages"]] == [(1, None), (2, None)]
    assert fax["form"] is None and fax["fields"] == {} and fax["draft"] == {}
    assert client.get(fax["pages"][0]["href"]).status_code == 200


def test_no_phi_in_the_logs_of_the_fax_api(client, staff, read_form, faxed_form,
                                           make_practice, caplog):
    practice_id, _ = make_practice("Lakeside Family Medicine", fax=CALLER)
    with caplog.at_level(logging.DEBUG):
        fax_id = read_form(practice_id, from_number=CALLER)
        client.get("/api/v1/faxes")
        draft = client.get(f"/api/v1/faxes/{fax_id}").get_json()["draft"]
        bad = copy.deepcopy(draft)
        bad["patient"]["birth_date"] = "1951-13-45"
        client.post(f"/api/v1/faxes/{fax_id}/referral",
                    json={"practice_id": practice_id, "referral": bad}, headers=staff)
        client.post(f"/api/v1/faxes/{fax_id}/referral",
                    json={"practice_id": practice_id, "referral": draft}, headers=staff)
    values = faxed_form.values(3)
    assert fax_id in caplog.text
    for phi in ("555", "0142", "1951", "Lakeside", values["patient.family_name"],
                values["patient.given_name"], values["patient.birth_date"]):
        assert phi.lower() not in caplog.text.lower(), phi
