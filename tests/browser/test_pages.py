"""The six browser scenarios of issue 6, in headless Chromium against a served app
with a real worker. Each saves a screenshot of its last page (see conftest)."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
import sample_referrals
from playwright.sync_api import expect
from referral_page import open_section
from signing_in import sign_in
from sqlalchemy import select

from refflow.db.models import AuditEntry, Delivery, Referral

pytestmark = pytest.mark.browser

VOICE_LINE = "+17635550111"  # the test fax transport answers it as a voice line


def reload_until(page, locator_text: str, timeout: float = 60.0) -> None:
    """Reload until ``locator_text`` is on the page (pages a person would refresh)."""
    deadline = time.monotonic() + timeout
    while True:
        if page.get_by_text(locator_text, exact=True).count():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{locator_text!r} did not appear")
        time.sleep(0.5)
        page.reload()


def test_practice_submits_form_with_a_mistake_fixes_it_and_sees_completed(page, site):
    sign_in(page, site.practice_user("north"))
    expect(page).to_have_url(f"{site.url}/portal/")
    page.get_by_role("link", name="New referral").first.click()

    next_year = (dt.date.today() + dt.timedelta(days=400)).isoformat()
    page.get_by_label("Given name").fill("Mary")
    page.get_by_label("Family name").fill("Brookfield")
    page.get_by_label("Date of birth").fill(next_year)  # the mistake
    page.get_by_label("Sex").select_option("female")
    page.get_by_role("group", name="Patient").get_by_label("Email").fill(
        "mary.brookfield@example.org")
    page.get_by_label("Your reference").fill("NFM-2001")
    page.get_by_label("ICD-10-CM codes").fill("M85.80")
    page.get_by_label("Diagnosis", exact=True).fill("osteopenia")
    page.get_by_label("Lowest T-score").fill("-1.8")
    page.get_by_label("Fractures since age 50").select_option("none")
    page.get_by_label("Falls in the last 12 months").fill("0")
    page.get_by_label("Mobility aid").select_option("none")
    page.get_by_label("Can rise from the floor").select_option("yes")
    page.get_by_label("Other conditions").fill("none")
    page.get_by_label("Activity level").select_option("light")
    page.get_by_label("The patient's goals").fill("walk to the store")
    page.get_by_role("button", name="Send referral").click()

    # the error is next to the field, the summary links to it, values are kept
    error = page.locator("#f-patient-birth_date-error")
    expect(error).to_contain_text("birth date is in the future", ignore_case=True)
    expect(page.locator("#error-summary")).to_be_visible()
    expect(page.get_by_label("Date of birth")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Given name")).to_have_value("Mary")
    expect(page.get_by_label("Lowest T-score")).to_have_value("-1.8")
    expect(page.get_by_label("Fractures since age 50")).to_have_value("none")

    page.get_by_label("Date of birth").fill("1962-04-11")
    page.get_by_role("button", name="Send referral").click()
    expect(page.get_by_role("heading", name="Brookfield, Mary")).to_be_visible()
    expect(page.get_by_text("the referral was received", exact=False)).to_be_visible()
    # the page follows the referral by itself until it is completed
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "completed",
                                                            timeout=60000)
    expect(page.get_by_role("link", name="Referrer summary (PDF)")).to_be_visible()

    page.get_by_role("link", name="← Our referrals").click()
    row = page.get_by_role("row").filter(has_text="Brookfield, Mary")
    expect(row).to_contain_text("Completed")
    expect(row.get_by_role("link", name="Patient handout (PDF)")).to_be_visible()
    assert not page.console_errors, page.console_errors


def test_staff_find_the_referral_and_see_plan_timeline_and_fax_pages(page, site):
    rid = site.submit("north", sample_referrals.routine(
        external_id="EHR-FIND-1",
        patient={"given_name": "Olive", "family_name": "Quarrington",
                 "birth_date": "1958-09-30", "sex": "female",
                 "email": "olive.q@example.org"}))
    site.stack.wait_for([rid], timeout=60)

    page.goto("/")
    expect(page).to_have_url(f"{site.url}/login?next=/")
    sign_in(page, site.staff_email)
    expect(page.get_by_role("heading", name="Referral queue")).to_be_visible()
    expect(page.get_by_text("Workers online")).to_be_visible()

    page.get_by_label("Search").fill("quarrington")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_label("Search")).to_have_value("quarrington")  # filters kept
    table = page.locator("table.list")
    expect(table.get_by_role("row")).to_have_count(2)  # header + the one match
    table.get_by_role("link", name="Quarrington, Olive").click()

    expect(page.get_by_role("heading", name="Quarrington, Olive")).to_be_visible()
    expect(page.locator(".page-head .status")).to_have_text("Completed")
    # nothing to do: the long sections are folded, and open on a click
    plan = open_section(page, "plan")
    expect(plan.get_by_text("Released to the patient")).to_be_visible()
    assert plan.locator("li.exercise").count() >= 3
    expect(open_section(page, "rules").locator("tbody tr").first).to_be_visible()
    timeline = open_section(page, "timeline")
    expect(timeline).to_contain_text("Received")
    expect(timeline).to_contain_text("Completed")
    deliveries = open_section(page, "deliveries")
    expect(deliveries.locator(".dstatus-sent")).to_have_count(3)
    open_section(page, "documents")

    images = page.locator("img.fax-page")
    assert images.count() >= 2  # cover page + summary
    for i in range(images.count()):
        images.nth(i).scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 1000",
                               arg=images.nth(i).element_handle())
    page.locator("#plan").scroll_into_view_if_needed()

    with site.stack.db.session() as session:
        views = session.scalars(select(AuditEntry.actor).where(
            AuditEntry.referral_id == rid, AuditEntry.action == "referral.view")).all()
    assert views and all(a.startswith("user:") for a in views)
    assert not page.console_errors, page.console_errors


def test_flagged_referral_is_approved_by_staff_and_then_delivered(page, site):
    body = sample_referrals.flagged()
    body["patient"] = {**body["patient"], "family_name": "Vertebra-Hollis"}
    rid = site.submit("north", body)
    site.stack.wait_for([rid], statuses=("needs_review",), timeout=60)

    sign_in(page, site.staff_email)
    review = page.locator("section", has=page.get_by_role("heading", name="Waiting for review"))
    review.get_by_role("link", name="Vertebra-Hollis, Mary").click()
    expect(page.locator(".page-head .status")).to_have_text("Needs review")
    expect(page.locator("#risk .sev-needs_review").first).to_be_visible()
    expect(page.get_by_text("Held for clinician review")).to_be_visible()

    page.get_by_label("Note (optional)").fill("Reviewed with the referrer; go ahead.")
    page.get_by_role("button", name="Approve plan and send").click()
    expect(page.get_by_text("Plan approved.")).to_be_visible()

    site.stack.wait_for([rid], timeout=60)
    page.reload()
    expect(page.locator(".page-head .status")).to_have_text("Completed")
    timeline = page.locator("#timeline")
    approved = timeline.locator("li", has_text="plan approved")
    expect(approved).to_contain_text(site.staff_email)
    expect(approved).to_contain_text("Reviewed with the referrer")
    expect(page.locator("#plan")).to_contain_text(f"approved by {site.staff_email}")
    with site.stack.db.session() as session:
        actions = session.scalars(select(AuditEntry.action).where(
            AuditEntry.referral_id == rid, AuditEntry.actor.like("user:%"))).all()
    assert "plan.approve" in actions and "referral.view" in actions


def test_failed_fax_delivery_is_corrected_and_resent_from_the_page(page, site):
    body = sample_referrals.routine(external_id="EHR-VOICE")
    body["patient"] = {**body["patient"], "family_name": "Faxwrong"}
    body["referrer"] = {**body["referrer"], "fax": VOICE_LINE}
    rid = site.submit("north", body)
    site.stack.wait_for([rid], statuses=("failed",), timeout=60)
    sent_before = {d.id: d.attempts for d in site.stack.deliveries(rid) if d.status == "sent"}
    assert len(sent_before) == 2

    sign_in(page, site.staff_email)
    failures = page.locator("section", has=page.get_by_role("heading", name="Failed deliveries"))
    expect(failures).to_contain_text("voice line")
    failures.get_by_role("link", name="Faxwrong, Mary").first.click()
    expect(page.locator(".page-head .status")).to_have_text("Failed")
    fax = page.locator("article.delivery-failed")
    expect(fax).to_contain_text("Fax to referrer")
    expect(fax).to_contain_text("Last error: the number answered as a voice line")

    fax.get_by_label("Fax number").fill("(763) 555-0198")
    fax.get_by_role("button", name="Correct and send again").click()
    expect(page.get_by_text("Sending again to the corrected address.")).to_be_visible()

    site.stack.wait_for([rid], timeout=60)
    page.reload()
    expect(page.locator(".page-head .status")).to_have_text("Completed")
    open_section(page, "deliveries")
    fax = page.locator("article", has=page.get_by_role("heading", name="Fax to referrer"))
    expect(fax.locator(".status")).to_have_text("Sent")
    expect(fax.locator(".target")).to_have_text("(763) 555-0198")  # +17635550198, as people write it
    expect(page.locator("#timeline")).to_contain_text("retry requested")
    after = {d.id: d for d in site.stack.deliveries(rid)}
    assert {i: after[i].attempts for i in sent_before} == sent_before  # others not re-sent
    with site.stack.db.session() as session:
        audit = session.scalars(select(AuditEntry.detail).where(
            AuditEntry.referral_id == rid, AuditEntry.action == "delivery.retry")).all()
    assert audit and "target corrected" in audit[0]


def test_practice_user_cannot_open_another_practices_referral(page, site):
    rid = site.submit("lake", sample_referrals.routine(external_id="LAKE-1"))
    sign_in(page, site.practice_user("north"))
    for path in (f"/portal/referrals/{rid}", f"/portal/referrals/{rid}/documents/summary.pdf",
                 f"/referrals/{rid}"):
        response = page.goto(path)
        assert response.status == 404, path
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    # a practice user is not staff: the front page (the queue) sends them to their portal
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/portal/$"))
    expect(page.locator("body")).not_to_contain_text("LAKE-1")
    page.goto(f"/portal/referrals/{rid}")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("LAKE-1")


def test_a_form_post_without_the_csrf_token_is_refused(page, site):
    body = sample_referrals.flagged()
    body["patient"] = {**body["patient"], "family_name": "Tokenless"}
    rid = site.submit("north", body)
    site.stack.wait_for([rid], statuses=("needs_review",), timeout=60)

    sign_in(page, site.staff_email)
    page.goto(f"/referrals/{rid}")
    page.locator("details.cancel summary").click()
    # a forged form: the same action, without the token
    page.evaluate("""() => {
        document.querySelectorAll('details.cancel input[name=csrf_token]')
            .forEach(el => el.remove());
    }""")
    page.get_by_role("button", name="Cancel referral").click()
    expect(page.get_by_role("heading", name="The request could not be accepted")).to_be_visible()
    expect(page.get_by_text("security token")).to_be_visible()
    with site.stack.db.session() as session:
        assert session.get(Referral, rid).status == "needs_review"
        assert not session.scalars(select(Delivery).where(Delivery.referral_id == rid)).all()
