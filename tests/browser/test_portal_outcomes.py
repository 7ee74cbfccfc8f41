"""The referring office sees the outcome (issue 15), in headless Chromium against
the served app with a real worker, Redis, PostgreSQL and SMTP server: each
decision in plain words on the portal — released, held for review, rejected
with the clinician's reason (and the letter reaches the referrer's email and
fax), do-not-exercise with what to do first, cancelled."""

from __future__ import annotations

import json

import pytest
import requests
import sample_referrals
from playwright.sync_api import expect
from signing_in import sign_in

pytestmark = pytest.mark.browser

REASON = "The surgeon's hip precautions must reach us in writing before we plan exercise."


def _open(page, site, rid: str) -> None:
    sign_in(page, site.practice_user("north"))
    page.goto(f"/portal/referrals/{rid}")


def _decision(page, kind: str, label: str) -> None:
    badge = page.locator("[data-decision]")
    expect(badge).to_have_attribute("data-decision", kind)
    expect(badge).to_have_text(label)


def test_released_plan_says_so_and_when_it_was_sent(page, site):
    rid = site.submit("north", sample_referrals.routine(external_id="OUT-RELEASED"))
    site.stack.wait_for([rid], timeout=60)
    _open(page, site, rid)
    _decision(page, "released", "Plan released")
    expect(page.locator("[data-decision-message]")).to_contain_text(
        "the patient has the exercise plan")
    expect(page.locator("[data-progress]")).to_have_text("Everything was delivered.")
    sent = page.locator("[data-plan-sent]")
    expect(sent).to_contain_text("by fax")
    expect(sent).to_contain_text("pages")
    expect(sent).to_contain_text("Confirmation: sendq/")
    expect(page.get_by_text("Plan summary to you by fax")).to_be_visible()
    # the list of referrals names the decision too
    page.goto("/portal/")
    row = page.locator("tr", has_text="OUT-RELEASED")
    expect(row.locator("[data-decision]")).to_have_text("Plan released")
    assert page.console_errors == []


def test_held_for_review(page, site):
    body = sample_referrals.flagged()
    body["external_id"] = "OUT-HELD"
    rid = site.submit("north", body)
    site.stack.wait_for([rid], statuses=("needs_review",), timeout=60)
    _open(page, site, rid)
    _decision(page, "held_for_review", "Held for review")
    expect(page.locator("[data-decision-message]")).to_have_text(
        "A clinician at the clinic is checking the plan before it goes out. Nothing has been "
        "sent to the patient yet.")
    expect(page.locator("[data-plan-sent]")).to_have_text("Not sent yet.")


def test_rejected_with_the_clinicians_reason_reaches_the_referrer(page, browser, site, smtp):
    body = sample_referrals.flagged()
    body["external_id"] = "OUT-REJECTED"
    body["referrer"]["email"] = "office-rejected@example.org"
    rid = site.submit("north", body)
    site.stack.wait_for([rid], statuses=("needs_review",), timeout=60)

    # a clinician rejects the plan on the staff page, saying why
    staff = browser.new_context(base_url=site.url)
    staff_page = staff.new_page()
    staff_page.site_password = page.site_password
    sign_in(staff_page, site.staff_email)
    staff_page.goto(f"/referrals/{rid}")
    staff_page.get_by_label("Why is it rejected? (required)").fill(REASON)
    staff_page.get_by_role("button", name="Reject plan").click()
    expect(staff_page.get_by_text("the referring office is sent a letter", exact=False)) \
        .to_be_visible()
    staff.close()

    _open(page, site, rid)
    _decision(page, "rejected", "Not accepted")
    expect(page.locator("[data-decision-reason]")).to_have_text(
        f"Why it was not accepted: {REASON}")
    expect(page.locator("[data-decision-message]")).to_contain_text(
        "You are sent a letter with the reason.")
    expect(page.get_by_text("Everything was delivered", exact=False)).to_have_count(0)
    expect(page.get_by_role("link", name="Letter: referral not accepted (PDF)")).to_be_visible()

    # the letter reached the referrer by email (the real SMTP server) and by fax (the spool)
    deliveries = {}
    for _ in range(120):
        deliveries = {d.channel: d for d in site.stack.deliveries(rid)}
        if deliveries and all(d.status == "sent" for d in deliveries.values()):
            break
        page.wait_for_timeout(500)
    assert {c: (d.document, d.status) for c, d in deliveries.items()} == {
        "email": ("decline.pdf", "sent"), "fax": ("decline.tiff", "sent")}
    [message] = smtp.for_delivery(deliveries["email"].id)
    assert message["To"].endswith("<office-rejected@example.org>")
    text = next(part.get_payload(decode=True).decode() for part in message.walk()
                if part.get_content_type() == "text/plain")
    assert " ".join(REASON.split()) in " ".join(text.split())
    spool = site.stack.settings.fax_spool_dir
    job = json.loads((spool / "sendq" / f"{deliveries['fax'].id}.json").read_text())
    assert job["pages"] == 2 and (spool / job["document"]).exists()
    page.reload()
    expect(page.get_by_text("Letter to you by email: Sent")).to_be_visible()


def test_do_not_exercise_says_what_to_do_first_and_never_everything_was_delivered(page, site):
    body = sample_referrals.routine(external_id="OUT-REDFLAG")
    body["clinical"]["blood_pressure"] = {"systolic": 210, "diastolic": 115}
    rid = site.submit("north", body)
    site.stack.wait_for([rid], timeout=60)
    _open(page, site, rid)
    _decision(page, "do_not_exercise", "Do not exercise yet")
    expect(page.locator("[data-decision-message]")).to_contain_text(
        "Please see the patient")
    expect(page.locator("[data-before-exercise] li").first).to_be_visible()
    expect(page.locator("[data-before-exercise]")).to_contain_text("before any exercise")
    expect(page.locator("[data-progress]")).to_contain_text(
        "The patient was not sent an exercise plan.")
    expect(page.get_by_text("Everything was delivered", exact=False)).to_have_count(0)
    expect(page.get_by_text("Completed – everything was delivered", exact=False)) \
        .to_have_count(0)


def test_cancelled(page, site):
    body = sample_referrals.flagged()
    body["external_id"] = "OUT-CANCELLED"
    rid = site.submit("north", body)
    site.stack.wait_for([rid], statuses=("needs_review",), timeout=60)
    r = requests.post(f"{site.url}/api/v1/referrals/{rid}/cancel", timeout=10,
                      json={"reason": "the patient moved away"},
                      headers={"Authorization": f"Bearer {site.api_key('north')}"})
    assert r.status_code == 200, r.text
    _open(page, site, rid)
    _decision(page, "cancelled", "Cancelled")
    expect(page.locator("[data-decision-message]")).to_have_text(
        "This referral was cancelled. Nothing more will be sent for it.")
