"""The Users page in headless Chromium: an admin disables a user (their open
session is refused at once), resets a password (shown once), unlocks an
account slowed by failed sign-ins (counted in Redis, as in production), and
keeps the last admin; staff cannot open the page.

The app is served here on its own settings (PostgreSQL, a Redis of this
module's own, a 10 minute first sign-in delay so no test races it); no
worker is needed.
"""

from __future__ import annotations

import os
import threading
import uuid
from types import SimpleNamespace

import pytest
import signing_in
from playwright.sync_api import expect
from sqlalchemy import select
from werkzeug.serving import make_server

from refflow.accounts.users import create_user
from refflow.config import load_settings
from refflow.db import database_for, migrate
from refflow.db.models import AuditEntry, User

pytestmark = pytest.mark.browser

PG_URL = os.environ.get("REFFLOW_TEST_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def site(tmp_path_factory, redis_server, pg_module_schema):
    """Replaces conftest's ``site`` (and so its worker) for this module."""
    from refflow.app import create_app

    settings = load_settings({}, data_dir=tmp_path_factory.mktemp("data"), database_url=PG_URL,
                             database_schema=pg_module_schema, secret_key="users-admin-test",
                             broker_url=redis_server.url, login_delay_base_seconds=600,
                             login_delay_max_seconds=3600, login_rate_limit="1000/minute")
    db = database_for(settings)
    migrate.upgrade(db)
    with db.session() as s:
        admin = create_user(s, "boss@clinic.example", PASSWORD, role="admin")
        admin_id = admin.id
    server = make_server("127.0.0.1", 0, create_app(settings, {}), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}", db=db,
                          admin="boss@clinic.example", admin_id=admin_id)
    server.shutdown()
    thread.join(5)
    db.dispose()


@pytest.fixture
def person(site):
    """A new user of ``role``: returns their email."""

    def make(role: str = "staff", password: str = PASSWORD) -> str:
        email = f"desk-{uuid.uuid4().hex[:8]}@clinic.example"
        with site.db.session() as s:
            create_user(s, email, password, role=role)
        return email

    return make


@pytest.fixture
def their_page(browser, site):
    """A second browser (cookies of its own): the other user's."""
    context = browser.new_context(base_url=site.url)
    context.set_default_timeout(15000)
    yield context.new_page()
    context.close()


def sign_in(page, email: str, password: str = PASSWORD) -> None:
    signing_in.sign_in(page, email, password)


def open_users(page, site) -> None:
    sign_in(page, site.admin)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users", level=1)).to_be_visible()


def row(page, email: str):
    return page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=email))


def user_id(site, email: str) -> str:
    with site.db.session() as s:
        return s.scalar(select(User.id).where(User.email == email))


def audit_actions(site, email: str) -> list[str]:
    uid = user_id(site, email)
    with site.db.session() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.detail.like(f"user {uid}%"))
                         .order_by(AuditEntry.id)).all()
    assert all(r.actor == f"user:{site.admin_id}" and "@" not in r.detail for r in rows)
    return [r.action for r in rows]


def test_admin_disables_a_user_and_their_open_session_is_refused(page, their_page, site,
                                                                   person):
    desk = person()
    sign_in(their_page, desk)
    expect(their_page.get_by_role("link", name="Queue")).to_be_visible()

    open_users(page, site)
    expect(row(page, desk)).to_contain_text("Active")
    row(page, desk).get_by_role("button", name=f"Disable {desk}").click()
    expect(page.get_by_role("status")).to_contain_text(f"{desk} is disabled")
    expect(row(page, desk)).to_contain_text("Disabled")

    their_page.reload()  # the open session is refused at once
    expect(their_page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(their_page, desk)
    expect(their_page.get_by_role("alert")).to_contain_text("email or password is not right")

    row(page, desk).get_by_role("button", name=f"Enable {desk}").click()
    expect(page.get_by_role("status")).to_contain_text(f"{desk} can sign in again")
    sign_in(their_page, desk)
    expect(their_page.get_by_role("link", name="Queue")).to_be_visible()
    assert audit_actions(site, desk) == ["user.disable", "user.enable"]


def test_admin_resets_a_password_shown_once(page, their_page, site, person):
    desk = person()
    sign_in(their_page, desk)

    open_users(page, site)
    row(page, desk).get_by_role("button", name=f"Reset password of {desk}").click()
    shown = page.locator("#new-password")
    expect(shown).to_contain_text(f"New password for {desk}")
    expect(shown).to_contain_text("only time it is shown")
    new_password = shown.locator("code").inner_text()
    assert len(new_password) >= 10 and new_password != PASSWORD
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    expect(page.locator("#new-password")).to_have_count(0)  # never again
    assert new_password not in page.content()

    their_page.reload()  # signed out everywhere
    expect(their_page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(their_page, desk)  # the old password no longer works
    expect(their_page.get_by_role("alert")).to_contain_text("email or password is not right")
    sign_in(their_page, desk, new_password)
    expect(their_page.get_by_role("link", name="Queue")).to_be_visible()
    assert audit_actions(site, desk) == ["user.password_reset"]


def test_admin_unlocks_an_account_slowed_by_failed_sign_ins(page, their_page, site, person):
    desk = person()
    for _ in range(5):  # the free failures (REFFLOW_LOGIN_FREE_FAILURES)
        sign_in(their_page, desk, "not the password")
        expect(their_page.get_by_role("alert")).to_contain_text("not right")
    sign_in(their_page, desk)  # the right password, inside the delay
    alert = their_page.get_by_role("alert")
    expect(alert).to_contain_text("Too many failed sign-ins")
    expect(alert).to_contain_text("ask an administrator to unlock your account")

    open_users(page, site)
    expect(row(page, desk).get_by_text("Locked", exact=True)).to_be_visible()
    row(page, desk).get_by_role("button", name=f"Unlock {desk}").click()
    expect(page.get_by_role("status")).to_contain_text(f"{desk} is unlocked")
    expect(row(page, desk).get_by_text("Locked", exact=True)).to_have_count(0)

    sign_in(their_page, desk)
    expect(their_page.get_by_role("link", name="Queue")).to_be_visible()
    assert audit_actions(site, desk) == ["user.unlock"]


def test_the_last_admin_is_kept_and_roles_switch(page, site, person):
    desk = person()
    open_users(page, site)
    row(page, site.admin).get_by_role("button", name=f"Disable {site.admin}").click()
    expect(page.get_by_role("alert")).to_contain_text("Cannot disable the last active admin")
    row(page, site.admin).get_by_role("button", name=f"Make staff {site.admin}").click()
    expect(page.get_by_role("alert")).to_contain_text("Cannot demote the last active admin")
    expect(row(page, site.admin)).to_contain_text("Active")

    row(page, desk).get_by_role("button", name=f"Make admin {desk}").click()
    expect(page.get_by_role("status")).to_contain_text(f"{desk} is now admin")
    row(page, desk).get_by_role("button", name=f"Make staff {desk}").click()
    expect(page.get_by_role("status")).to_contain_text(f"{desk} is now staff")
    assert audit_actions(site, desk) == ["user.role", "user.role"]


def test_staff_cannot_open_the_users_page(page, site, person):
    desk = person()
    target = user_id(site, person())
    sign_in(page, desk)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Queue")).to_be_visible()
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)

    answer = page.goto("/users")
    assert answer.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_text("Only an administrator can open this page.")).to_be_visible()

    # nor act through a form it cannot see (a valid CSRF token of its own)
    token = page.locator("input[name=csrf_token]").first.input_value()
    answer = page.request.post(f"/users/{target}/disable", form={"csrf_token": token})
    assert answer.status == 403
    with site.db.session() as s:
        assert s.get(User, target).active
