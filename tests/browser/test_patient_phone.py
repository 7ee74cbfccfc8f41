"""The patient's page on a phone (issue 19), in headless Chromium at 390x844
against the served app with a real worker, Redis, PostgreSQL and SMTP server:
the email to the patient carries the link; the link alone shows nothing; a
wrong date of birth is refused; the right one opens this week's exercises;
two sessions are logged with pain ratings; staff see them on the referral
page (sessions per week, the pain chart)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import sample_referrals
from playwright.sync_api import expect
from signing_in import sign_in

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


def _emailed_link(smtp, address: str) -> str:
    for message in reversed(smtp.messages):
        if address in (message["To"] or ""):
            for part in message.walk():
                if part.get_content_type() == "text/plain":
                    found = re.search(r"https?://\S+/p/([A-Za-z0-9_-]+)",
                                      part.get_payload(decode=True).decode())
                    if found:
                        return found.group(1)
    raise AssertionError("no email with a patient link")


def test_patient_logs_two_sessions_on_a_phone_and_staff_see_them(page, browser, site, smtp):
    body = sample_referrals.routine(external_id="PHONE-1")
    body["patient"]["email"] = "phone.patient@example.org"
    rid = site.submit("north", body)
    site.stack.wait_for([rid], timeout=60)
    token = _emailed_link(smtp, "phone.patient@example.org")

    phone = browser.new_context(base_url=site.url, viewport=PHONE, is_mobile=True,
                                has_touch=True, device_scale_factor=2)
    phone.set_default_timeout(15000)
    p = phone.new_page()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        p.goto(f"/p/{token}")
        expect(p.get_by_role("heading", name="Your exercise plan")).to_be_visible()
        expect(p.get_by_text("Stay safe", exact=False)).to_have_count(0)  # nothing shown yet
        p.get_by_label("Date of birth").fill("1962-04-12")
        p.get_by_role("button", name="Show my exercises").click()
        expect(p.get_by_role("alert")).to_contain_text("does not match our records")
        p.screenshot(path=str(SCREENSHOTS / "patient_phone_refused.png"), full_page=True)

        p.get_by_label("Date of birth").fill(body["patient"]["birth_date"])
        p.get_by_role("button", name="Show my exercises").click()
        expect(p.get_by_role("heading", name="This week's exercises")).to_be_visible()
        assert p.locator("article.exercise").count() >= 3
        assert p.locator("article.exercise img.drawing").count() >= 1  # the exercise drawings
        # large type and no sideways scrolling on a phone
        assert p.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        p.screenshot(path=str(SCREENSHOTS / "patient_phone_plan.png"), full_page=False)

        yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
        p.get_by_label("Day", exact=True).fill(yesterday)
        p.locator("label.pick", has_text=re.compile(r"^2$")).click()
        p.locator("label.pick", has_text="Easy").click()
        p.get_by_role("button", name="I did my exercises today").click()
        expect(p.get_by_role("status")).to_contain_text("Your session is saved")

        p.locator("label.pick", has_text=re.compile(r"^5$")).click()
        p.locator("label.pick", has_text="Hard").click()
        p.get_by_label("A note for your therapist").fill("back tired after the squats")
        p.get_by_role("button", name="I did my exercises today").click()
        expect(p.get_by_role("status")).to_contain_text("Your session is saved")
        logged = p.locator("ul.logged li")
        expect(logged).to_have_count(2)
        expect(logged.first).to_contain_text("pain 5/10")
        expect(logged.nth(1)).to_contain_text("pain 2/10")
        p.locator("#log").scroll_into_view_if_needed()
        p.screenshot(path=str(SCREENSHOTS / "patient_phone_logged.png"), full_page=True)
    finally:
        phone.close()

    sign_in(page, site.staff_email)
    page.goto(f"/referrals/{rid}#exercise-log")
    log = page.locator("#exercise-log")
    expect(log).to_contain_text("2 sessions logged")
    expect(log.locator("ul.exercise-sessions li")).to_have_count(2)
    expect(log.locator("ul.exercise-sessions")).to_contain_text("pain 5/10")
    expect(log.locator("ul.exercise-sessions")).to_contain_text("back tired after the squats")
    expect(log.locator("svg circle")).to_have_count(2)
    assert sum(int(t) for t in log.locator("td[data-week]").all_inner_texts()) == 2
    log.scroll_into_view_if_needed()
    log.screenshot(path=str(SCREENSHOTS / "patient_phone_staff_log.png"))


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_a_spanish_speaking_patients_page_on_a_phone(browser, app, live_server, settings, db,
                                                     practice):
    """The page in Spanish at 390x844 (the app served in a thread; the plan
    built in-process with the clinic allowing the unreviewed Spanish)."""
    from sqlalchemy import select

    from refflow.db.models import Document
    from refflow.pipeline import flow, outbox
    from refflow.pipeline.context import Pipeline
    from refflow.pipeline.stored_documents import document_bytes

    body = sample_referrals.routine(external_id="PHONE-ES")
    body["patient"]["preferred_language"] = "es"
    r = app.test_client().post("/api/v1/referrals", json=body,
                               headers={"Authorization": f"Bearer {practice[1]}"})
    assert r.status_code == 202, r.text
    rid = r.get_json()["id"]
    outbox.relay(db, lambda task, args: None)
    p = Pipeline(settings.with_overrides(allow_unreviewed_translations=True), db=db,
                 publish=lambda task, args: None)
    assert flow.build_plan(p, rid) == "delivering"
    with db.session() as s:
        url = document_bytes(p.store, s.scalar(select(Document).where(
            Document.referral_id == rid, Document.name == "patient-link.txt"))).decode()

    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                device_scale_factor=2, locale="es-US")
    phone.set_default_timeout(15000)
    pg = phone.new_page()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        pg.goto(live_server + "/p/" + url.rsplit("/", 1)[1])
        expect(pg.locator("html")).to_have_attribute("lang", "es-US")
        expect(pg.get_by_role("heading", name="Su plan de ejercicios")).to_be_visible()
        pg.get_by_label("Fecha de nacimiento").fill(body["patient"]["birth_date"])
        pg.get_by_role("button", name="Ver mis ejercicios").click()
        expect(pg.get_by_role("heading", name="Los ejercicios de esta semana")).to_be_visible()
        expect(pg.locator("#unreviewed")).to_contain_text("todavía no ha sido revisada")
        assert pg.locator("article.exercise").count() >= 3
        assert pg.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        pg.screenshot(path=str(SCREENSHOTS / "patient_phone_spanish.png"), full_page=False)
        pg.locator("article.exercise").first.scroll_into_view_if_needed()
        pg.screenshot(path=str(SCREENSHOTS / "patient_phone_spanish_card.png"), full_page=False)
    finally:
        phone.close()
