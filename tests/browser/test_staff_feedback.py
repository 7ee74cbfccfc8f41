"""The staff referral page shows what happened where the person is looking (issue 21):
the result of Approve, Reject and "Correct and send again" (and why it was refused,
with what was typed still in the field) appears in the viewport, at the form that was
used, not at the top of a long page; a red-flag referral says what staff must do;
numbers, diagnoses and an unnamed referrer read the same way everywhere; the queue's
search box has room for its placeholder.

Headless Chromium against the served app with a real worker (see conftest). The
viewport is a laptop's (1280x650), so the page is longer than one screen."""

from __future__ import annotations

import re

import pytest
import sample_referrals
from playwright.sync_api import expect
from referral_page import open_section
from signing_in import sign_in

pytestmark = pytest.mark.browser

VOICE_LINE = "+17635550111"  # the test fax transport answers it as a voice line
LAPTOP = {"width": 1280, "height": 650}


def held_referral(site, family_name: str) -> str:
    body = sample_referrals.flagged()  # a recent vertebral fracture: held for a clinician
    body["patient"] = {**body["patient"], "family_name": family_name}
    rid = site.submit("north", body)
    site.stack.wait_for([rid], statuses=("needs_review",), timeout=60)
    return rid


def in_view(page, locator) -> None:
    """``locator`` is on screen, whole, where the page opened or scrolled to."""
    expect(locator).to_be_in_viewport(ratio=1)
    box = locator.bounding_box()
    assert box and 0 <= box["y"] and box["y"] + box["height"] <= page.viewport_size["height"]


def below_the_first_screen(page, locator) -> None:
    """``locator`` is further down the page than the first screen: seen only
    because the page opened on it."""
    top = locator.evaluate("el => el.getBoundingClientRect().top + window.scrollY")
    assert top > page.viewport_size["height"], (top, page.viewport_size)


def test_approve_shows_its_result_in_view(page, site):
    rid = held_referral(site, "Approve-Inview")
    page.set_viewport_size(LAPTOP)
    sign_in(page, site.staff_email)
    page.goto(f"/referrals/{rid}")
    page.get_by_label("Note (optional)").fill("Reviewed with the referrer.")
    page.get_by_role("button", name="Approve plan and send").click()
    message = page.locator("#actions #feedback .notice-success")
    expect(message).to_have_text("Plan approved. The documents will now be prepared and sent.")
    in_view(page, message)
    expect(page).to_have_url(re.compile("#feedback$"))
    # the message is said once, where the form was (not also at the top)
    expect(page.get_by_text("Plan approved.")).to_have_count(1)


def test_reject_without_a_reason_is_refused_at_the_form(page, site):
    rid = held_referral(site, "Reject-Noreason")
    page.set_viewport_size(LAPTOP)
    sign_in(page, site.staff_email)
    page.goto(f"/referrals/{rid}")
    page.get_by_label("Note (optional)").fill("kept for the approval")
    note = page.get_by_label("Why is it rejected? (required)")
    # a browser that ignores `required` (or an old one) sends the form empty
    note.evaluate("el => el.removeAttribute('required')")
    note.fill("   ")
    page.get_by_role("button", name="Reject plan").click()

    error = page.locator("#actions #feedback .notice-error")
    expect(error).to_have_text(
        "Not rejected: say why the plan is rejected (the note is required).")
    in_view(page, error)
    expect(error).to_have_attribute("role", "alert")
    note = page.get_by_label("Why is it rejected? (required)")
    expect(note).to_have_attribute("aria-invalid", "true")
    in_view(page, note)
    expect(page.locator(".page-head .status")).to_have_text("Needs review")  # nothing done

    # with a reason it goes through, and says so in the same place
    note.fill("Needs a spine review first.")
    page.get_by_role("button", name="Reject plan").click()
    done = page.locator("#actions #feedback .notice-success")
    expect(done).to_contain_text("Plan rejected.")
    in_view(page, done)


def test_reject_after_someone_else_approved_says_why_in_view(page, site):
    rid = held_referral(site, "Two-Tabs")
    page.set_viewport_size(LAPTOP)
    sign_in(page, site.staff_email)
    page.goto(f"/referrals/{rid}")
    other = page.context.new_page()  # a colleague's tab, signed in as the same person
    other.goto(f"/referrals/{rid}")
    other.get_by_role("button", name="Approve plan and send").click()
    expect(other.get_by_text("Plan approved.")).to_be_visible()
    other.close()

    page.get_by_label("Why is it rejected? (required)").fill("Needs a spine review first.")
    page.get_by_role("button", name="Reject plan").click()
    error = page.locator("#actions #feedback .notice-error")
    expect(error).to_have_text(re.compile(
        r"^Not rejected: a (planned|delivering|completed) referral cannot be rejected\.$"))
    in_view(page, error)


def test_correct_and_send_again_answers_next_to_the_delivery(page, site):
    body = sample_referrals.routine(external_id="FEEDBACK-VOICE")
    body["patient"] = {**body["patient"], "family_name": "Wrongline"}
    body["referrer"] = {**body["referrer"], "fax": VOICE_LINE}
    rid = site.submit("north", body)
    site.stack.wait_for([rid], statuses=("failed",), timeout=60)
    [fax] = [d for d in site.stack.deliveries(rid) if d.channel == "fax"]
    page.set_viewport_size(LAPTOP)
    sign_in(page, site.staff_email)
    page.goto(f"/referrals/{rid}")

    article = page.locator(f"#delivery-{fax.id}")
    field = article.get_by_label("Fax number")
    expect(field).to_have_value("(763) 555-0111")  # as the clinic writes numbers
    field.fill("555 01")
    article.get_by_role("button", name="Correct and send again").click()

    error = page.locator(f"#delivery-{fax.id} #feedback .notice-error")
    expect(error).to_contain_text("Not sent again:")
    in_view(page, error)
    below_the_first_screen(page, error)
    field = page.locator(f"#delivery-{fax.id}").get_by_label("Fax number")
    expect(field).to_have_value("555 01")  # what was typed, to correct
    expect(field).to_have_attribute("aria-invalid", "true")
    in_view(page, field)

    field.fill("(763) 555-0198")
    page.locator(f"#delivery-{fax.id}").get_by_role(
        "button", name="Correct and send again").click()
    done = page.locator(f"#delivery-{fax.id} #feedback .notice-success")
    expect(done).to_have_text("Sending again to the corrected address.")
    in_view(page, done)
    below_the_first_screen(page, done)

    site.stack.wait_for([rid], timeout=60)
    page.reload()
    open_section(page, "deliveries")
    expect(page.locator(f"#delivery-{fax.id} .target")).to_have_text("(763) 555-0198")


def test_a_red_flag_says_whom_to_call_and_facts_read_plainly(page, site):
    body = sample_referrals.routine(external_id="FEEDBACK-REDFLAG")
    body["patient"] = {**body["patient"], "family_name": "Redflag",
                       "phone": "+1 763 555 0142"}
    body["clinical"]["blood_pressure"] = {"systolic": 210, "diastolic": 115}
    body["diagnosis"] = {"codes": [], "text": "osteopenia"}
    body["referrer"] = {"fax": "+1 763 555 0198"}  # no name
    rid = site.submit("north", body)
    site.stack.wait_for([rid], timeout=60)
    sign_in(page, site.staff_email)
    page.goto(f"/referrals/{rid}")

    todo = page.locator("#actions [data-red-flag]")
    expect(todo.get_by_role("heading")).to_have_text(
        "Red flag: call the patient or the referrer today")
    in_view(page, todo.get_by_role("heading"))
    expect(todo).to_contain_text("(763) 555-0142")  # the patient's phone
    expect(todo).to_contain_text("not known, fax (763) 555-0198")  # the unnamed referrer
    expect(page.get_by_text("No decision is needed")).to_have_count(0)
    expect(page.locator("#risk .flags li").first).to_be_in_viewport()  # the flags follow

    facts = open_section(page, "facts")
    expect(facts.locator("[data-diagnosis]")).to_have_text("osteopenia")  # no stray dash
    expect(facts.locator("[data-referrer]")).to_contain_text("not known")
    expect(facts.locator("[data-referrer] .phone")).to_have_text("(763) 555-0198")
    assert "+1" not in page.locator("#main").inner_text()  # no number left as stored
    assert not page.console_errors, page.console_errors


def test_a_referral_page_opens_on_what_needs_doing(page, site):
    rid = held_referral(site, "Opens-Ondoing")
    sign_in(page, site.staff_email)
    page.goto(f"/referrals/{rid}")
    in_view(page, page.get_by_role("button", name="Approve plan and send"))
    in_view(page, page.locator("#risk .flags li").first)
    # what needs doing is open (the plan to review); the long reference is folded
    for section in ("plan",):
        expect(page.locator(f"#{section} > details")).to_have_attribute("open", "")
    for section in ("facts", "rules", "documents", "timeline"):
        expect(page.locator(f"#{section} > details")).not_to_have_attribute("open", "")
    # the table of contents opens the section it leads to
    page.get_by_role("navigation", name="On this page").get_by_role(
        "link", name="Timeline").click()
    expect(page.locator("#timeline > details")).to_have_attribute("open", "")
    expect(page.locator("#timeline li").first).to_be_in_viewport()
    page.goto(f"/referrals/{rid}")  # the last page (saved as a screenshot) as it opens


def test_the_queues_search_box_fits_its_placeholder(page, site):
    sign_in(page, site.staff_email)
    for width in (1280, 1024, 800, 390):
        page.set_viewport_size({"width": width, "height": 900})
        search = page.get_by_label("Search")
        room = search.evaluate("""el => {
            const s = getComputedStyle(el);
            const ctx = document.createElement('canvas').getContext('2d');
            ctx.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
            return {text: ctx.measureText(el.placeholder).width,
                    inner: el.clientWidth - parseFloat(s.paddingLeft)
                           - parseFloat(s.paddingRight)};
        }""")
        assert room["text"] <= room["inner"], (width, room)
