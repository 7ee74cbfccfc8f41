"""The Fax inbox in a real browser (headless Chromium) against the served app,
with the real worker reading the faxes and the real pipeline building the plan.

A filled referral form (bench/faxed_forms.py) arrives as a fax through
``refflow fax receive`` (what a fax server's hook runs); the worker reads it;
staff open the Fax inbox, check the draft against the page, fill in a field
the office left blank, and create the referral, which goes on to be planned
and delivered. Another fax (not a referral) is archived with a reason.
Screenshots of the inbox and the review screen go to test-output/screenshots/.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect
from signing_in import sign_in
from sqlalchemy import select

from refflow.db.models import AuditEntry, ReceivedFax, Referral, ReferralEvent

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import faxed_forms  # noqa: E402  (bench/: filled forms as received faxes)

SCREENSHOTS = ROOT / "test-output" / "screenshots"

pytestmark = pytest.mark.browser

GOOD_FAX = "+17635550198"  # North's fax number: the caller is matched to it
VALUES = {
    "patient.family_name": "WINTERBOURNE", "patient.given_name": "MARGARET",
    "patient.birth_date": "1949-06-14", "patient.sex": "female",
    "referrer.name": "DR R PATEL", "referrer.fax": GOOD_FAX,
    "diagnosis.codes": "M81.0", "diagnosis.text": "OSTEOPOROSIS",
    "clinical.t_score": "-2.7", "clinical.fractures": "none",
    "clinical.falls_last_12_months": "0", "clinical.can_rise_from_floor": "yes",
    "clinical.mobility_aid": "none", "clinical.activity_level": "light",
    "clinical.conditions": "HYPERTENSION", "clinical.medications": "ALENDRONATE",
    "goals": "",  # the office left the goals blank: staff fill them in from the phone call
    "deliver.email_to_patient": "no", "deliver.fax_to_referrer": "yes",
}


def receive_by_cli(site, tmp_path: Path, content: bytes, number: str) -> str:
    """``refflow fax receive FILE --from N --json``, as HylaFAX's hook runs it."""
    path = tmp_path / "fax000000123.tif"
    path.write_bytes(content)
    done = subprocess.run([sys.executable, "-m", "refflow", "fax", "receive", str(path),
                           "--from", number, "--json"], env=site.stack.env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["created"] is True
    return answer["id"]


def wait_until_read(site, fax_id: str, timeout: float = 60.0) -> dict:
    """The worker reads the fax (the scheduler relays the read from the outbox)."""
    deadline = time.monotonic() + timeout
    while True:
        with site.stack.db.session() as s:
            row = s.get(ReceivedFax, fax_id)
            if row.status != "received":
                return row.reading
        if time.monotonic() > deadline:
            data = site.stack.settings.data_dir
            logs = {n: (data / f"{n}.log").read_text(errors="replace")[-3000:]
                    for n in ("worker", "scheduler") if (data / f"{n}.log").exists()}
            raise AssertionError(f"the worker did not read the fax\n{logs}")
        time.sleep(0.2)


def wait_for_images(page, images) -> None:
    for i in range(images.count()):
        images.nth(i).scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth >= 1000",
                               arg=images.nth(i).element_handle())


def test_staff_turn_a_faxed_form_into_a_referral_that_is_planned_and_sent(page, site,
                                                                           tmp_path):
    north = site.practices["north"]["id"]
    fax = faxed_forms.faxed_form(VALUES, practice_id=north, style="mono", resolution="fine")
    fax_id = receive_by_cli(site, tmp_path, fax, "+1 (763) 555-0198")
    reading = wait_until_read(site, fax_id)
    assert reading["form"]["practice_id"] == north

    sign_in(page, site.staff_email)
    nav = page.get_by_role("navigation", name="Main")
    inbox_link = nav.get_by_role("link", name="Fax inbox")
    expect(inbox_link.locator(".nav-count")).to_be_visible()
    inbox_link.click()
    expect(page.get_by_role("heading", name="Fax inbox")).to_be_visible()
    row = page.locator(f'tr[data-fax="{fax_id}"]')
    expect(row).to_contain_text("North Family Medicine")
    expect(row).to_contain_text("(763) 555-0198")
    expect(row).to_contain_text("refflow form")
    expect(row).to_contain_text("Waiting for review")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "fax_inbox_list.png"), full_page=True)
    row.get_by_role("link", name="Review").click()

    # the page beside the draft
    expect(page.get_by_role("heading", name="Draft referral")).to_be_visible()
    wait_for_images(page, page.locator("img.fax-page"))
    expect(page.get_by_label("Referring practice")).to_have_value(north)
    patient = page.get_by_role("group", name="Patient", exact=True)
    expect(patient.get_by_label("Last name")).to_have_value("WINTERBOURNE")
    expect(patient.get_by_label("Date of birth")).to_have_value("1949-06-14")
    expect(patient.get_by_role("radio", name="Female")).to_be_checked()
    expect(page.get_by_label("Diagnosis in words")).to_have_value("OSTEOPOROSIS")
    goals = page.get_by_label("Patient's goals")
    expect(goals).to_have_value("")
    expect(page.locator('[data-field="goals"] .confidence')).to_have_text("Blank on the form")
    page.locator("details.ocr-text summary").first.click()
    expect(page.locator("details.ocr-text pre").first).to_contain_text("PATIENT")
    page.locator("details.ocr-text summary").first.click()

    goals.fill("Walk to the store, garden")
    page.evaluate("window.scrollTo(0, 0)")
    page.locator(".fax-review-pages").evaluate("column => { column.scrollTop = 0; }")
    page.screenshot(path=str(SCREENSHOTS / "fax_review_draft.png"), full_page=False)

    # a slip: the last name emptied; the referral is refused, the error is by the field
    patient.get_by_label("Last name").fill("")
    page.get_by_role("button", name="Create referral").click()
    expect(page.locator("#error-summary")).to_contain_text("Patient: Last name")
    last_name = page.get_by_role("group", name="Patient", exact=True).get_by_label("Last name")
    expect(last_name).to_have_attribute("aria-invalid", "true")
    expect(page.locator('[data-field="patient.family_name"] .field-error')).to_be_visible()
    expect(page.get_by_label("Patient's goals")).to_have_value("Walk to the store, garden")
    wait_for_images(page, page.locator("img.fax-page"))
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / "fax_review_error.png"), full_page=False)
    last_name.fill("Winterbourne")
    page.get_by_role("button", name="Create referral").click()

    expect(page.get_by_text("Referral created from the fax.")).to_be_visible()
    expect(page.get_by_role("heading", name="Winterbourne, MARGARET")).to_be_visible()
    referral_id = page.url.rstrip("/").rsplit("/", 1)[1]
    expect(page.locator("#facts")).to_contain_text("Walk to the store")
    site.stack.wait_for([referral_id], timeout=90)
    page.reload()
    expect(page.locator(".page-head .status")).to_have_text("Completed")
    assert page.locator("#plan li.exercise").count() >= 3
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("received fax")
    expect(timeline).to_contain_text("Completed")

    # the fax is done: out of the waiting list, in Done with a link to the referral
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Fax inbox").click()
    expect(page.locator(f'tr[data-fax="{fax_id}"]')).to_have_count(0)
    page.get_by_role("link", name="Done").click()
    done = page.locator(f'tr[data-fax="{fax_id}"]')
    expect(done).to_contain_text("Referral created")
    expect(done.get_by_role("link", name="Open the referral")).to_have_attribute(
        "href", f"/referrals/{referral_id}")

    with site.stack.db.session() as s:
        fax_row = s.get(ReceivedFax, fax_id)
        assert (fax_row.status, fax_row.referral_id) == ("referral", referral_id)
        audited = s.scalars(select(AuditEntry).where(AuditEntry.actor.like("user:%"),
                                                     AuditEntry.action.like("fax.%"))).all()
        assert any(fax_id in (a.detail or "") for a in audited)
        assert all("WINTERBOURNE" not in (a.detail or "").upper() for a in audited)
        assert s.get(Referral, referral_id).payload["goals"] == ["Walk to the store", "garden"]
        assert s.scalar(select(ReferralEvent.id).where(ReferralEvent.referral_id == referral_id,
                                                       ReferralEvent.kind == "fax"))
    assert not page.console_errors, page.console_errors


def test_staff_archive_a_fax_that_is_not_a_referral(page, site):
    from refflow.faxin import inbox
    from refflow.pipeline.context import Pipeline

    advert = faxed_forms.faxed_form({}, practice_id=None)  # stands in for any stray fax
    advert = _without_barcode(advert)
    p = Pipeline(site.stack.settings, db=site.stack.db)
    fax_id = inbox.receive(p, advert, source="cli", from_number="+1 612 555 0142").fax_id
    wait_until_read(site, fax_id)

    sign_in(page, site.staff_email)
    page.goto("/faxes")
    row = page.locator(f'tr[data-fax="{fax_id}"]')
    expect(row).to_contain_text("no practice matched")
    expect(row).to_contain_text("free-form")
    row.get_by_role("link", name="Review").click()
    expect(page.get_by_text("not refflow's referral form")).to_be_visible()

    archive = page.locator("#archive")
    archive.get_by_role("button", name="Archive fax").click()  # no reason: the browser asks
    expect(page).to_have_url(f"{site.url}/faxes/{fax_id}")
    archive.get_by_label("Reason").fill("Advertisement, not a referral")
    archive.get_by_role("button", name="Archive fax").click()

    expect(page.get_by_text("Fax archived.")).to_be_visible()
    expect(page.locator(f'tr[data-fax="{fax_id}"]')).to_have_count(0)
    page.get_by_role("link", name="Archived").click()
    expect(page.locator(f'tr[data-fax="{fax_id}"]')).to_contain_text("Archived")
    page.locator(f'tr[data-fax="{fax_id}"]').get_by_role("link", name="Open").click()
    expect(page.get_by_text("Advertisement, not a referral")).to_be_visible()
    expect(page.get_by_role("button", name="Archive fax")).to_have_count(0)
    wait_for_images(page, page.locator("img.fax-page"))
    assert not page.console_errors, page.console_errors


def _without_barcode(tiff: bytes) -> bytes:
    """The fax with its top third blanked: no QR code, so not refflow's form."""
    import io

    from PIL import Image, ImageDraw

    with Image.open(io.BytesIO(tiff)) as image:
        dpi = image.info.get("dpi", (204, 196))
        page = image.convert("1")
    ImageDraw.Draw(page).rectangle((0, 0, page.width, page.height // 3), fill=1)
    out = io.BytesIO()
    page.save(out, format="TIFF", compression="group3", dpi=dpi)
    return out.getvalue()
