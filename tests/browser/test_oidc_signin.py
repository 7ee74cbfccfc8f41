"""Single sign-on for staff through a real OpenID Connect provider (Authlib's
server side, ``oidc_provider.py``) on a real port: in headless Chromium, and
the callback's refusals with Flask's test client (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import uuid
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from oidc_provider import Provider
from playwright.sync_api import expect
from sqlalchemy import select
from web_forms import PASSWORD, sign_in
from werkzeug.serving import make_server

from refflow.accounts.practices import create_practice
from refflow.accounts.users import create_user
from refflow.app import create_app
from refflow.config import ConfigError, load_settings
from refflow.db.models import AuditEntry, User

PROVIDER_NAME = "Clinic Sign-In"
PROVIDER_PASSWORD = "provider-pass-123"


@pytest.fixture(scope="module")
def provider():
    p = Provider()
    p.start()
    yield p
    p.stop()


def _sso_settings(settings, provider: Provider, client):
    return settings.with_overrides(oidc_issuer=provider.issuer, oidc_client_id=client.client_id,
                                   oidc_client_secret=client.client_secret,
                                   oidc_provider_name=PROVIDER_NAME)


@pytest.fixture(scope="module")
def site(stack, provider):
    """The app with single sign-on through ``provider`` (overrides the conftest's)."""
    client = provider.add_client(redirect_uri="")
    app = create_app(_sso_settings(stack.settings, provider, client), {})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    client.redirect_uris[:] = [f"{url}/login/oidc/callback"]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(url=url, stack=stack)
    server.shutdown()
    thread.join(5)


def _staff(db, *, active: bool = True) -> str:
    email = f"sso-{uuid.uuid4().hex[:8]}@clinic.example"
    with db.session() as s:
        user = create_user(s, email, PASSWORD, role="staff")
        user.active = active
    return email


def _sign_in_at_provider(page, email: str) -> None:
    page.goto("/login")
    page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").click()
    expect(page.get_by_role("heading", name="Test identity provider")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PROVIDER_PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()


@pytest.mark.browser
def test_staff_signs_in_through_the_provider_and_lands_on_the_dashboard(page, site, provider):
    email = _staff(site.stack.db)
    person = provider.add_person(email, PROVIDER_PASSWORD)
    _sign_in_at_provider(page, email)
    expect(page).to_have_url(f"{site.url}/")
    expect(page.get_by_role("heading", name="Referral queue")).to_be_visible()
    with site.stack.db.session() as s:
        user = s.scalar(select(User).where(User.email == email))
        assert user.oidc_subject == f"{provider.issuer} {person.sub}"
        logins = s.scalars(select(AuditEntry.detail).where(
            AuditEntry.actor == f"user:{user.id}", AuditEntry.action == "login")).all()
    assert logins == ["single sign-on"]

    # the link decides from now on: a new email at the provider is the same user
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{site.url}/login")
    person.email = f"renamed-{email}"
    provider.people[person.email] = person
    _sign_in_at_provider(page, person.email)
    expect(page.get_by_role("heading", name="Referral queue")).to_be_visible()


@pytest.mark.browser
@pytest.mark.parametrize("case,message", [
    ("unknown", "There is no refflow user with the email"),
    ("disabled", "This refflow user is disabled."),
    ("unverified", "did not give a verified email address"),
    ("practice", "Single sign-on is for clinic staff."),
])
def test_the_provider_vouches_for_someone_refflow_refuses(page, site, provider, case, message):
    if case == "unknown":
        email = f"nobody-{uuid.uuid4().hex[:8]}@clinic.example"
    elif case == "practice":
        name = f"Practice {uuid.uuid4().hex[:6]}"
        email = f"office-{uuid.uuid4().hex[:8]}@practice.example"
        with site.stack.db.session() as s:
            create_practice(s, name, fax="+17635550198", email="office@practice.example")
            create_user(s, email, PASSWORD, role="practice", practice=name)
    else:
        email = _staff(site.stack.db, active=case != "disabled")
    provider.add_person(email, PROVIDER_PASSWORD, email_verified=case != "unverified")
    _sign_in_at_provider(page, email)
    expect(page.get_by_role("alert")).to_contain_text(message)
    page.goto("/")
    expect(page).to_have_url(f"{site.url}/login?next=/")  # not signed in
    with site.stack.db.session() as s:
        linked = s.scalar(select(User.oidc_subject).where(User.email == email))
    assert linked is None


# -- Flask's test client ----------------------------------------------------------------------

@pytest.fixture
def sso_client(settings, provider):
    """A test client of the app with single sign-on through the real provider."""
    client = provider.add_client(redirect_uri="http://localhost/login/oidc/callback")
    return create_app(_sso_settings(settings, provider, client), {"TESTING": True}).test_client()


def test_the_callback_refuses_a_state_it_did_not_send(sso_client, db):
    start = sso_client.get("/login/oidc")
    assert start.status_code == 302
    sent = parse_qs(urlsplit(start.headers["Location"]).query)
    assert sent["code_challenge_method"] == ["S256"] and sent["nonce"][0]
    r = sso_client.get("/login/oidc/callback", query_string={"code": "made-up",
                                                             "state": "not-" + sent["state"][0]})
    assert r.status_code == 400
    assert "Single sign-on did not complete" in r.text
    assert sso_client.get("/").status_code == 302  # not signed in
    with db.session() as s:
        refused = s.scalars(select(AuditEntry.detail).where(
            AuditEntry.action == "login.failed")).all()
    assert refused == ["single sign-on: MismatchingStateError"]


def test_an_error_from_the_provider_signs_no_one_in(sso_client):
    sso_client.get("/login/oidc")
    r = sso_client.get("/login/oidc/callback", query_string={"error": "access_denied"})
    assert r.status_code == 400
    assert sso_client.get("/").status_code == 302


def test_a_provider_that_does_not_answer_is_said_so(settings):
    from refflow import embedded

    down = settings.with_overrides(oidc_issuer=f"http://127.0.0.1:{embedded.free_port()}",
                                   oidc_client_id="refflow", oidc_client_secret="secret")
    client = create_app(down, {"TESTING": True}).test_client()
    r = client.get("/login/oidc")
    assert r.status_code == 502
    assert "The sign-in provider could not be reached" in r.text
    assert "Sign in</button>" in r.text  # the password form is still there


def test_passwords_still_work_next_to_single_sign_on(sso_client, db):
    email = _staff(db)
    page = sso_client.get("/login")
    assert f"Sign in with {PROVIDER_NAME}" in page.text
    r = sign_in(sso_client, email)
    assert r.status_code == 302 and r.headers["Location"] == "/"


def test_without_settings_there_is_no_single_sign_on(client):
    assert "Sign in with" not in client.get("/login").text
    assert client.get("/login/oidc").status_code == 404
    assert client.get("/login/oidc/callback?state=x").status_code == 404


def test_single_sign_on_needs_all_three_settings():
    with pytest.raises(ConfigError, match="REFFLOW_OIDC_CLIENT_ID, REFFLOW_OIDC_CLIENT_SECRET"):
        load_settings({"REFFLOW_OIDC_ISSUER": "https://id.example"}, secret_key="x")
    with pytest.raises(ConfigError, match="https:// in production"):
        load_settings({"REFFLOW_OIDC_ISSUER": "http://id.example", "REFFLOW_OIDC_CLIENT_ID": "a",
                       "REFFLOW_OIDC_CLIENT_SECRET": "b", "REFFLOW_ENV": "production",
                       "REFFLOW_SECRET_KEY": "k", "REFFLOW_DATABASE_URL": "sqlite:///x.db",
                       "REFFLOW_BROKER_URL": "redis://127.0.0.1"})
