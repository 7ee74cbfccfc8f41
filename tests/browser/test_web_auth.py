"""Sign-in, session and CSRF edge cases with Flask's test client (no browser),
on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select
from web_forms import PASSWORD, sign_in, token

from refflow.accounts.users import create_user
from refflow.app import create_app
from refflow.db.models import AuditEntry, Referral


@pytest.fixture
def people(db, make_practice):
    _north, north_key = make_practice("North")
    _lake, lake_key = make_practice("Lake")
    with db.session() as s:
        create_user(s, "staff@clinic.example", PASSWORD, role="staff")
        create_user(s, "north@practice.example", PASSWORD, role="practice", practice="North")
        create_user(s, "lake@practice.example", PASSWORD, role="practice", practice="Lake")
    return {"north_key": north_key, "lake_key": lake_key}


def test_signed_out_visitors_go_to_login(client):
    r = client.get("/")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
    assert client.get("/portal/").status_code == 302


def test_login_without_csrf_token_is_refused(client, people):
    r = client.post("/login", data={"email": "staff@clinic.example", "password": PASSWORD})
    assert r.status_code == 400
    assert "security token" in r.text
    assert client.get("/").status_code == 302  # not signed in


def test_staff_action_without_csrf_token_is_refused(client, people, referral_body):
    r = client.post("/api/v1/referrals", json=referral_body,
                    headers={"Authorization": f"Bearer {people['north_key']}"})
    assert r.status_code == 202  # the JSON API needs no token
    rid = r.get_json()["id"]
    assert sign_in(client, "staff@clinic.example").status_code == 302
    r = client.post(f"/referrals/{rid}/cancel", data={"reason": "forged"})
    assert r.status_code == 400
    page = client.get(f"/referrals/{rid}")
    r = client.post(f"/referrals/{rid}/cancel", data={"csrf_token": "not-the-token"})
    assert r.status_code == 400
    r = client.post(f"/referrals/{rid}/cancel", data={"csrf_token": token(page.text)},
                    headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = client.post(f"/referrals/{rid}/cancel", data={"csrf_token": token(page.text)})
    assert r.status_code == 302
    assert client.get(f"/api/v1/referrals/{rid}").get_json()["status"] == "cancelled"


def test_login_rotates_the_session_and_sets_safe_cookie_flags(client, people):
    first = token(client.get("/login").text)
    r = sign_in(client, "staff@clinic.example")
    assert r.status_code == 302 and r.headers["Location"] == "/"
    cookies = {c.split("=", 1)[0]: c for c in r.headers.getlist("Set-Cookie")}
    assert set(cookies) == {"refflow_session", "refflow_device"}  # session, trusted browser
    for cookie in cookies.values():
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain HTTP in the test
    second = token(client.get("/").text)
    assert first != second  # a new CSRF token after sign-in
    r = client.get("/login", base_url="https://localhost")
    assert "Secure" in r.headers.get("Set-Cookie", "Secure")


def test_wrong_password_is_one_message_and_the_account_is_slowed(settings, people, db):
    # a long first delay, so the test never races it
    client = create_app(settings.with_overrides(login_delay_base_seconds=600),
                        {"TESTING": True}).test_client()
    r = sign_in(client, "staff@clinic.example", "wrong password!")
    assert r.status_code == 401 and "email or password is not right" in r.text
    r = sign_in(client, "nobody@clinic.example", "wrong password!")
    assert r.status_code == 401 and "email or password is not right" in r.text
    for _ in range(4):
        r = sign_in(client, "staff@clinic.example", "wrong password!")
        assert r.status_code == 401
    r = sign_in(client, "staff@clinic.example")  # right password, but inside the delay
    assert r.status_code == 429 and "Too many failed sign-ins" in r.text
    assert "Try again in 10 minutes" in r.text
    assert int(r.headers["Retry-After"]) == 600
    assert client.get("/").status_code == 302  # not signed in
    with db.session() as s:
        assert s.scalar(select(AuditEntry.id).where(AuditEntry.action == "login.failed"))
        delayed = s.scalars(select(AuditEntry).where(AuditEntry.action == "login.delayed")).all()
    assert len(delayed) == 1 and "staff@" not in (delayed[0].detail or "")


@pytest.mark.parametrize("hostile", [
    "//evil.example/x", "/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example",
    "/ /evil.example", "https://evil.example/", "/\\evil.example", "/\x00/evil.example"])
def test_next_only_goes_to_this_site(app, people, hostile):
    """Browsers drop tabs and newlines inside a URL: "/<tab>/evil.example" would
    leave as "//evil.example" after a real sign-in."""
    client = app.test_client()
    page = client.get("/login", query_string={"next": hostile})
    assert hostile not in page.text
    r = client.post("/login", data={"email": "staff@clinic.example", "password": PASSWORD,
                                    "next": hostile, "csrf_token": token(page.text)})
    assert r.headers["Location"] == "/"


def test_next_keeps_a_path_on_this_site(app, people):
    client = app.test_client()
    page = client.get("/login?next=/referrals/abc%3Ftab%3Dplan")
    r = client.post("/login", data={"email": "staff@clinic.example", "password": PASSWORD,
                                    "next": "/referrals/abc?tab=plan",
                                    "csrf_token": token(page.text)})
    assert r.headers["Location"] == "/referrals/abc?tab=plan"


def test_idle_session_expires(app, client, people, monkeypatch):
    sign_in(client, "staff@clinic.example")
    assert client.get("/").status_code == 200
    idle = app.extensions["refflow.settings"].session_idle_minutes * 60
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + idle + 5)
    r = client.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert "idle" in client.get(r.headers["Location"]).text


def test_polling_does_not_keep_a_session_alive(app, client, people, monkeypatch):
    sign_in(client, "staff@clinic.example")
    idle = app.extensions["refflow.settings"].session_idle_minutes * 60
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + idle - 10)
    poll = {"X-Refflow-Poll": "1"}
    assert client.get("/queue/fragment", headers=poll).status_code == 200
    monkeypatch.setattr(time, "time", lambda: real() + idle + 5)
    assert client.get("/queue/fragment", headers=poll).status_code == 401


def test_practice_isolation(client, people, referral_body, db):
    r = client.post("/api/v1/referrals", json=referral_body,
                    headers={"Authorization": f"Bearer {people['lake_key']}"})
    rid = r.get_json()["id"]
    sign_in(client, "north@practice.example")
    for path in (f"/portal/referrals/{rid}", f"/portal/referrals/{rid}/status",
                 f"/portal/referrals/{rid}/documents/summary.pdf", f"/referrals/{rid}",
                 f"/referrals/{rid}/fax/1.png", "/queue/fragment"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "Page not found" in r.text
    # the front page is the staff queue: a practice user is sent to their portal
    r = client.get("/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/portal/")
    assert referral_body["patient"]["family_name"] not in client.get("/portal/").text
    r = client.post(f"/referrals/{rid}/cancel",
                    data={"csrf_token": token(client.get("/portal/").text)})
    assert r.status_code == 404
    with db.session() as s:
        assert s.get(Referral, rid).status == "received"


def test_portal_form_uses_the_api_validation(client, people, db):
    sign_in(client, "north@practice.example")
    page = client.get("/portal/referrals/new")
    assert 'value="+17635550198"' in page.text  # the practice's fax is offered
    form = {"csrf_token": token(page.text), "patient.given_name": "Ann",
            "patient.family_name": "Lee", "patient.birth_date": "1951-03-02",
            "patient.sex": "female", "diagnosis.codes": "M81.0, nonsense",
            "clinical.t_score": "minus two", "referrer.npi": "1234567890",
            "clinical.blood_pressure.systolic": "120",
            "clinical.blood_pressure.diastolic": "130"}
    r = client.post("/portal/referrals/new", data=form)
    assert r.status_code == 422
    for field_id in ("f-diagnosis-codes-error", "f-clinical-t_score-error",
                     "f-referrer-npi-error", "f-clinical-blood_pressure-systolic-error"):
        assert field_id in r.text, field_id
    assert 'value="minus two"' in r.text and 'value="Ann"' in r.text
    with db.session() as s:
        assert s.scalar(select(Referral.id)) is None
    form.update({"diagnosis.codes": "M81.0", "clinical.t_score": "-2.8", "referrer.npi": "",
                 "clinical.blood_pressure.diastolic": "80", "clinical.medications": "none"})
    r = client.post("/portal/referrals/new", data=form)
    assert r.status_code == 302
    with db.session() as s:
        row = s.scalar(select(Referral))
        assert row.payload["clinical"]["t_score"] == -2.8
        assert row.payload["clinical"]["medications"] == []
        assert "fractures" not in row.payload["clinical"]  # not known stays not known
        assert s.scalar(select(AuditEntry.actor).where(
            AuditEntry.action == "referral.create")).startswith("user:")


def test_staff_dashboard_filters_search_without_phi_in_urls(client, people, referral_body):
    for given in ("Ann", "Beatrice"):
        body = {**referral_body, "patient": {**referral_body["patient"], "given_name": given}}
        body.pop("external_id", None)
        client.post("/api/v1/referrals", json=body,
                    headers={"Authorization": f"Bearer {people['north_key']}"})
    sign_in(client, "staff@clinic.example")
    page = client.get("/")
    assert "Lee, Ann" in page.text and "Lee, Beatrice" in page.text
    r = client.post("/queue/filters", data={"csrf_token": token(page.text), "q": "beat",
                                            "status": "received"})
    assert r.status_code == 302 and r.headers["Location"] == "/"  # no search text in the URL
    page = client.get("/")
    assert "Lee, Beatrice" in page.text and "Lee, Ann" not in page.text
    fragment = client.get("/queue/fragment", headers={"X-Refflow-Poll": "1"})
    assert "Lee, Beatrice" in fragment.text and "Lee, Ann" not in fragment.text


def test_logout(client, people):
    sign_in(client, "staff@clinic.example")
    page = client.get("/")
    r = client.post("/logout", data={"csrf_token": token(page.text)})
    assert r.status_code == 302
    assert client.get("/").status_code == 302


def test_logout_ends_copies_of_the_session_cookie(app, client, people):
    sign_in(client, "staff@clinic.example")
    page = client.get("/")
    assert page.status_code == 200
    stolen = client.get_cookie("refflow_session").value
    thief = app.test_client()
    thief.set_cookie("refflow_session", stolen)
    assert thief.get("/").status_code == 200  # the copy works while the session lives
    assert thief.get("/api/v1/queue").status_code == 200
    client.post("/logout", data={"csrf_token": token(page.text)})
    assert thief.get("/").status_code == 302  # …and not after sign-out
    assert thief.get("/api/v1/queue").status_code == 401
    # signing in again gives a fresh, working session
    sign_in(client, "staff@clinic.example")
    assert client.get("/").status_code == 200


def test_pages_with_patient_data_are_never_stored_but_the_stylesheet_may_be(client, people):
    sign_in(client, "staff@clinic.example")
    for path in ("/", "/queue/fragment", "/portal/", "/login"):
        r = client.get(path)
        assert r.headers.get("Cache-Control") == "no-store", (path, r.status_code)
    static = client.get("/web-static/refflow.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")


def test_the_queue_search_is_kept_sealed_in_the_session_cookie(client, people, referral_body):
    """A search is often a patient's name; the signed (not encrypted) session
    cookie keeps it only encrypted, and the search still holds over a refresh."""
    import base64
    import zlib

    key = people["lake_key"]
    body = {**referral_body, "patient": {**referral_body["patient"], "family_name": "Zebulon"}}
    assert client.post("/api/v1/referrals", json=body,
                       headers={"Authorization": f"Bearer {key}"}).status_code == 202
    sign_in(client, "staff@clinic.example")
    page = client.get("/")
    r = client.post("/queue/filters", data={"q": "Zebulon", "csrf_token": token(page.text)})
    assert r.status_code == 302
    cookie = client.get_cookie("refflow_session").value
    payload = cookie.lstrip(".").split(".")[0]  # itsdangerous: [.]payload.time.signature
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    decoded = zlib.decompress(raw) if cookie.startswith(".") else raw
    assert b"zebulon" not in decoded.lower() and b"q_sealed" in decoded
    refreshed = client.get("/").get_data(as_text=True)
    assert "Zebulon" in refreshed and 'value="Zebulon"' in refreshed


def test_in_production_the_session_cookie_is_host_only_and_secure(settings, people):
    """Behind TLS in production the cookie is __Host-: only this host, path /,
    Secure, so no sibling subdomain can plant or shadow a session."""
    from refflow.app import create_app

    app = create_app(settings.with_overrides(env="production"), {"TESTING": True})
    client = app.test_client()
    page = client.get("/login", base_url="https://clinic.example")
    r = client.post("/login", base_url="https://clinic.example",
                    data={"email": "staff@clinic.example", "password": PASSWORD,
                          "csrf_token": token(page.text)})
    assert r.status_code == 302
    cookies = {v.split("=", 1)[0]: v for v in r.headers.getlist("Set-Cookie")}
    assert set(cookies) == {"__Host-refflow_session", "__Host-refflow_device"}
    for cookie in cookies.values():
        assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
    assert client.get("/", base_url="https://clinic.example").status_code == 200
