"""A clinician finishes a plan held for review in the staff page (issue 15), in
headless Chromium against the served app with a real worker, Redis, PostgreSQL,
an SMTP server and the fax spool.

The clinician removes an exercise, adds one found by the catalogue search,
changes its dose, adds a note to the patient, tries to add an exercise the
patient's bone category excludes (refused, naming the rule and its evidence),
keeps it with an override reason, looks at the draft documents and approves.
What went out is then checked against the approved version:

- the emailed handout (the attachment the real SMTP server received, its text
  read with pypdf) has the added exercise with the changed dose and the note,
  and not the removed exercise;
- the fax: the TIFF in the fax spool is compared, page by page and pixel for
  pixel, with ``render_fax`` of the released plan as stored in the database.
  The fax's cover page and the summary print the time they were made (to the
  minute), which the worker does not store, so the fax is rendered again for
  the minute its document was stored and the minute before; one of them must
  match every page exactly. That proves the fax was made from the released
  version (an earlier version differs in the exercises' pages), without OCR;
- the chart summary PDF (pypdf text) prints the override with its reason;
- the staff page's timeline and version list show every version.

A second test: two tabs edit the same version; the second save is refused with
the plain "someone else changed this plan" message and keeps what was typed.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re

import pytest
import sample_referrals
from playwright.sync_api import expect
from pypdf import PdfReader
from referral_page import open_section
from signing_in import sign_in
from sqlalchemy import select

pytestmark = pytest.mark.browser

REMOVED = "Wall push-up"
ADDED_ID, ADDED = "heel_raises", "Heel (calf) raises holding support"
RISKY_ID, RISKY = "double_knee_to_chest", "Double knee-to-chest (supine)"
RISKY_RULE = "no_loaded_or_end_range_flexion"
NOTE = "Hold the back of a sturdy kitchen chair for every standing exercise."
OVERRIDE = "Surgeon cleared gentle knee-to-chest; we teach it at the first visit."


def held_referral(site, external_id: str) -> str:
    body = sample_referrals.flagged()  # bone category C: a recent vertebral fracture
    body["external_id"] = external_id
    rid = site.submit("north", body)
    site.stack.wait_for([rid], statuses=("needs_review",), timeout=60)
    return rid


def saved(page, version: int) -> None:
    expect(page.locator(".notice-success")).to_contain_text(f"Saved as version {version}")
    expect(page.locator("[data-plan-version]")).to_contain_text(f"Version {version}")


def exercise_editor(page, ex_id: str):
    box = page.locator(f"details[data-exercise='{ex_id}']")
    if box.get_attribute("open") is None:
        box.locator("summary").click()
    return box


def add_from_catalogue(page, name_query: str, ex_id: str, name: str, reason: str,
                       category: str | None = None) -> None:
    open_section(page, "editor")
    page.get_by_label("Name", exact=True).fill(name_query)
    if category:
        page.get_by_label("Category", exact=True).select_option(category)
    page.get_by_role("button", name="Search the catalogue").click()
    expect(page.locator(f"[data-catalogue='{ex_id}']")).to_be_visible()
    # each match shows its drawing (start -> end), loaded as an image the browser decoded
    drawing = page.locator(f"[data-catalogue='{ex_id}'] img.catalogue-drawing")
    expect(drawing).to_have_attribute("alt", re.compile("^Drawing of "))
    assert drawing.evaluate("img => img.complete && img.naturalWidth > 100")
    page.locator("#reason-add").fill(reason)
    page.get_by_role("button", name=f"Add {name}").click()


def pdf_text(content: bytes) -> str:
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(content)).pages)
    return " ".join(text.split())


def tiff_pages(content: bytes) -> list[tuple]:
    from PIL import Image, ImageSequence

    with Image.open(io.BytesIO(content)) as image:
        return [(frame.size, frame.convert("1").tobytes()) for frame in
                ImageSequence.Iterator(image)]


def test_clinician_edits_overrides_and_approves(page, site, smtp):
    rid = held_referral(site, "EDIT-FULL")
    sign_in(page, site.staff_email)
    page.goto(f"/referrals/{rid}")
    expect(page.locator("[data-plan-version]")).to_contain_text("Version 1")

    # 1. remove an exercise
    box = exercise_editor(page, "wall_push_up")
    box.get_by_label("Reason for this change").last.fill("shoulder pain on pushing")
    box.get_by_role("button", name=f"Remove {REMOVED}").click()
    saved(page, 2)
    expect(page.locator("details[data-exercise='wall_push_up']")).to_have_count(0)

    # 2. add one from the catalogue, found by name and category
    add_from_catalogue(page, "heel raise", ADDED_ID, ADDED, "calf strength for walking",
                       category="strength")
    saved(page, 3)

    # 3. change its dose
    box = exercise_editor(page, ADDED_ID)
    box.get_by_label("Sets").fill("2")
    box.get_by_label("Repeats").fill("15")
    box.get_by_label("Reason for this change").first.fill("she manages more already")
    box.get_by_role("button", name=f"Save the dose of {ADDED}").click()
    saved(page, 4)

    # 4. a note to the patient
    open_section(page, "editor")
    page.get_by_label("Note to the patient").fill(NOTE)
    page.locator("#reason-note").fill("safety at home")
    page.get_by_role("button", name="Add the note").click()
    saved(page, 5)
    expect(page.locator("[data-patient-notes]")).to_contain_text(NOTE)

    # 5. a change that breaks a hard rule: refused with the rule's name and evidence …
    add_from_catalogue(page, "knee to chest", RISKY_ID, RISKY, "low back stiffness")
    problem = page.locator("#edit-problem")
    expect(problem).to_contain_text("breaks a safety rule")
    expect(problem.locator(f"[data-rule='{RISKY_RULE}']")).to_contain_text(RISKY)
    expect(problem.locator(f"[data-rule='{RISKY_RULE}']")).to_contain_text("flexion")
    expect(page.locator("[data-plan-version]")).to_contain_text("Version 5")
    # … then kept with an override reason
    problem.get_by_label("Override with a reason").fill(OVERRIDE)
    problem.get_by_role("button", name="Save with this override").click()
    saved(page, 6)
    expect(page.locator("[data-overrides]")).to_contain_text(OVERRIDE)

    # the draft documents of version 6, as images
    open_section(page, "documents")
    page.get_by_role("button", name="Show the draft handout, summary and fax").click()
    first = page.get_by_alt_text("Draft Patient handout (PDF), page 1 of", exact=False)
    first.scroll_into_view_if_needed()
    expect(first).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 500",
                           arg=first.element_handle(), timeout=30000)
    expect(page.locator("[data-draft='fax.tiff'] img").first).to_be_visible()

    # the versions and their difference
    open_section(page, "versions")
    page.get_by_label("From version").select_option("1")
    page.get_by_label("To version").select_option("6")
    page.get_by_role("button", name="Compare").click()
    compare = page.locator("[data-compare]")
    expect(compare.locator("[data-diff='removed'] li")).to_have_text([REMOVED])
    expect(compare.locator("[data-diff='added'] li")).to_have_text([ADDED, RISKY])
    expect(compare.locator("[data-diff='patient_notes'] li")).to_have_text([f"added: {NOTE}"])
    page.get_by_label("From version").select_option("3")
    page.get_by_label("To version").select_option("4")
    page.get_by_role("button", name="Compare").click()
    expect(compare.locator("[data-diff='changed'] li")).to_have_text(
        [f"{ADDED}: sets 1 → 2, reps 10 → 15"])

    # approve: version 6 is released
    page.get_by_role("button", name="Approve plan and send").click()
    expect(page.get_by_text("Plan approved.")).to_be_visible()
    site.stack.wait_for([rid], timeout=90)

    from refflow.db.blobstore import store_for
    from refflow.db.models import Document, Plan, Referral
    from refflow.documents.clinic import ClinicInfo
    from refflow.documents.render import render_fax
    from refflow.pipeline.flow import referral_input
    from refflow.pipeline.stored_documents import document_bytes

    with site.stack.db.session() as s:
        plan = s.scalar(select(Plan.body).where(Plan.referral_id == rid))
        docs = {d.name: d for d in s.scalars(select(Document).where(Document.referral_id == rid))}
        stored = {name: document_bytes(store_for(site.stack.settings), d)
                  for name, d in docs.items()}
        referral_in = referral_input(s.get(Referral, rid))
    assert plan["version"] == 6 and plan["approved"]["by"] == site.staff_email
    ids = [e["id"] for e in plan["exercises"]]
    assert "wall_push_up" not in ids and ADDED_ID in ids and RISKY_ID in ids
    added = next(e for e in plan["exercises"] if e["id"] == ADDED_ID)
    assert (added["dose"]["sets"], added["dose"]["reps"]) == (2, 15)
    assert plan["patient_notes"] == [NOTE]

    deliveries = {d.channel: d for d in site.stack.deliveries(rid)}
    assert {c: d.status for c, d in deliveries.items()} == {
        "email": "sent", "fax": "sent", "pdf": "sent"}

    # the emailed handout (what the SMTP server received) is the approved version
    [message] = smtp.for_delivery(deliveries["email"].id)
    [attachment] = [part.get_payload(decode=True) for part in message.walk()
                    if part.get_content_type() == "application/pdf"]
    handout = pdf_text(attachment)
    assert attachment == stored["handout.pdf"]
    assert REMOVED not in handout
    assert ADDED in handout and "2 sets of 15" in handout
    assert RISKY in handout
    assert NOTE in handout
    assert "DRAFT" not in handout
    assert f"Approved by {site.staff_email}" in handout

    # the fax in the spool is, pixel for pixel, the fax of the released version
    spool = site.stack.settings.fax_spool_dir
    job = json.loads((spool / "sendq" / f"{deliveries['fax'].id}.json").read_text())
    sent = tiff_pages((spool / job["document"]).read_bytes())
    stored_at = docs["fax.tiff"].created_at
    if stored_at.tzinfo is None:
        stored_at = stored_at.replace(tzinfo=dt.UTC)
    settings = site.stack.settings
    clinic = ClinicInfo.from_settings(settings)
    candidates = [tiff_pages(render_fax(referral_in, plan, clinic, resolution=settings.fax_resolution,
                                        paper=settings.paper, sent_at=stored_at - dt.timedelta(minutes=m)))
                  for m in (0, 1)]
    assert any(sent == c for c in candidates), (
        f"the faxed pages differ from the approved version's fax: {len(sent)} pages sent, "
        f"{[len(c) for c in candidates]} rendered")
    # and the same check tells an earlier version apart: version 5 has no knee-to-chest
    from refflow.db.models import PlanVersion

    with site.stack.db.session() as s:
        v5 = s.scalar(select(PlanVersion.body).where(PlanVersion.referral_id == rid,
                                                     PlanVersion.version == 5))
    v5_fax = tiff_pages(render_fax(referral_in, {**v5, "approved": plan["approved"]}, clinic,
                                   resolution=settings.fax_resolution, paper=settings.paper,
                                   sent_at=stored_at))
    assert v5_fax not in candidates

    # the override is printed on the chart record (the referrer's summary names no rules)
    chart = pdf_text(stored["chart.pdf"])
    assert "Safety rules overridden by a clinician" in chart
    assert RISKY_RULE not in pdf_text(stored["summary.pdf"]).replace(" ", "")
    squeezed = chart.replace(" ", "")
    assert RISKY_RULE in squeezed and RISKY_ID in squeezed
    assert OVERRIDE.replace(" ", "") in squeezed

    # the staff page's timeline and version list show every version
    page.goto(f"/referrals/{rid}")
    timeline = page.locator("#timeline")
    for n in range(2, 7):
        expect(timeline).to_contain_text(f"version {n}:")
    expect(timeline).to_contain_text(f"rule {RISKY_RULE} overridden")
    open_section(page, "versions")
    for n in range(1, 7):
        expect(page.locator(f"#versions [data-version='{n}']")).to_be_visible()
    expect(page.locator("#versions [data-version='6']")).to_contain_text("released")
    expect(page.locator("#editor")).to_have_count(0)
    assert page.console_errors == []


def test_two_tabs_editing_the_same_version(page, site):
    rid = held_referral(site, "EDIT-CONFLICT")
    sign_in(page, site.staff_email)
    first = page
    second = page.context.new_page()
    first.goto(f"/referrals/{rid}")
    second.goto(f"/referrals/{rid}")
    for tab in (first, second):
        expect(tab.locator("[data-plan-version]")).to_contain_text("Version 1")
        open_section(tab, "editor")

    first.get_by_label("Note to the patient").fill("Walk with a friend when you can.")
    first.locator("#reason-note").fill("company helps")
    first.get_by_role("button", name="Add the note").click()
    saved(first, 2)

    precaution = "No lifting more than 10 lb for six weeks."
    second.get_by_label("Precaution", exact=False).first.fill(precaution)
    second.locator("#reason-precaution").fill("from the referral's restrictions")
    second.get_by_role("button", name="Add the precaution").click()
    expect(second.locator("[data-conflict]")).to_have_text(
        "Someone else changed this plan (now version 2). Your change was not saved; review "
        "the new version and try again.")
    # what was typed is kept, and the page now shows version 2 (with the first tab's note)
    expect(second.get_by_label("Precaution", exact=False).first).to_have_value(precaution)
    expect(second.locator("#reason-precaution")).to_have_value("from the referral's restrictions")
    expect(second.locator("[data-plan-version]")).to_contain_text("Version 2")
    expect(second.locator("[data-patient-notes]")).to_contain_text("Walk with a friend")
    # saving again now starts from version 2
    second.get_by_role("button", name="Add the precaution").click()
    saved(second, 3)
    expect(second.locator("#plan")).to_contain_text(precaution)
    expect(second.locator("#versions [data-version='3']")).to_contain_text(
        "from the referral's restrictions")


def test_the_web_app_starts_without_the_renderers(tmp_path):
    """Drafts are rendered on demand: creating the web app (and its staff pages)
    loads neither ReportLab nor PDFium."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from refflow.app import create_app\n"
            "from refflow.config import load_settings\n"
            f"s = load_settings({{'REFFLOW_DATA_DIR': {str(tmp_path)!r}, "
            f"'REFFLOW_DATABASE_URL': 'sqlite:///{tmp_path}/web.db', "
            "'REFFLOW_SECRET_KEY': 'x'})\n"
            "create_app(s, {})\n"
            "import refflow.web.staff, refflow.web.downloads\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('reportlab', 'pypdfium2', 'pypdfium2_raw')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
