"""The staff Fax inbox pages and the referral form downloads, through the Flask
test client: staff only, every view of a fax audited with ids only, a draft
that fails validation comes back with its errors next to the fields and what
was typed, and the forms carry the right barcode."""

from __future__ import annotations

import io
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pypdfium2
import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select

from refflow.accounts.users import create_user
from refflow.db.models import AuditEntry, ReceivedFax, Referral, ReferralEvent
from refflow.documents.referral_form import parse_barcode_text
from refflow.faxin import inbox
from refflow.pipeline.context import Pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))

import faxed_forms  # noqa: E402  (bench/)
from web_forms import PASSWORD, sign_in, token  # noqa: E402  (tests/browser/)

STAFF = "pt@clinic.example"
OFFICE = "office@north.example"

VALUES = {
    "patient.family_name": "LEE", "patient.given_name": "ANN",
    "patient.birth_date": "1951-03-02", "patient.sex": "female",
    "referrer.name": "DR R PATEL", "referrer.fax": "+17635550198",
    "diagnosis.codes": "M81.0", "diagnosis.text": "OSTEOPOROSIS",
    "clinical.t_score": "-2.8", "clinical.fractures": "none",
    "clinical.falls_last_12_months": "0", "clinical.mobility_aid": "none",
    "goals": "WALK TO THE STORE", "deliver.fax_to_referrer": "yes",
    "deliver.email_to_patient": "no",
}


@pytest.fixture(scope="module")
def form_fax() -> bytes:
    """A filled referral form as a fax machine delivers it (no practice in its barcode)."""
    return faxed_forms.faxed_form(VALUES, practice_id=None)


@pytest.fixture
def people(db, practice):
    with db.session() as s:
        create_user(s, STAFF, PASSWORD, role="staff")
        create_user(s, OFFICE, PASSWORD, role="practice", practice="North Family Medicine")


def _blank_fax() -> bytes:
    """A one-page fax with nothing on it (an advert would do as well)."""
    page = Image.new("1", (1728, 1100), 1)
    out = io.BytesIO()
    page.save(out, format="TIFF", compression="group3", dpi=(204, 98))
    return out.getvalue()


def _receive(settings, db, content: bytes, *, read: bool = True,
             number: str = "+1 763 555 0198") -> str:
    p = Pipeline(settings, db=db)
    fax_id = inbox.receive(p, content, source="cli", from_number=number).fax_id
    if read:
        inbox.read(p, fax_id)
    return fax_id


def test_only_staff_see_the_fax_inbox(client, settings, db, people):
    fax_id = _receive(settings, db, _blank_fax(), read=False)
    pages = ["/faxes", f"/faxes/{fax_id}", f"/faxes/{fax_id}/pages/1.png"]
    for path in pages:  # signed out: to the sign-in page
        r = client.get(path)
        assert r.status_code == 302 and "/login" in r.location
    sign_in(client, OFFICE)
    for path in pages:  # a referring office never learns the pages exist
        assert client.get(path).status_code == 404
    home = client.get("/portal/").text
    assert "Fax inbox" not in home
    with db.session() as s:
        assert not s.scalars(select(AuditEntry).where(AuditEntry.action.like("fax.%"),
                                                      AuditEntry.actor.like("user:%"))).all()


def test_staff_review_a_read_form_and_every_view_is_audited(client, settings, db, people,
                                                            form_fax):
    fax_id = _receive(settings, db, form_fax)
    sign_in(client, STAFF)
    home = client.get("/").text
    assert re.search(r'Fax inbox <span class="nav-count">1<', home)

    listing = client.get("/faxes").text
    assert f"/faxes/{fax_id}" in listing
    assert "North Family Medicine" in listing and "(763) 555-0198" in listing
    assert "refflow form" in listing and "Waiting for review" in listing

    page = client.get(f"/faxes/{fax_id}")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    html = page.text
    assert f'src="/faxes/{fax_id}/pages/1.png"' in html
    assert re.search(r'name="patient.family_name" value="LEE"', html)
    assert re.search(r'<option value="[^"]+" selected>North Family Medicine</option>', html)
    assert "confidence" in html and "Text read from page 1" in html
    for action in ("Create referral", "Attach to referral", "Archive fax"):
        assert action in html

    png = client.get(f"/faxes/{fax_id}/pages/1.png")
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert png.headers["Cache-Control"] == "no-store"
    with Image.open(io.BytesIO(png.data)) as image:
        assert image.width == 1100 and image.height > image.width
    assert client.get(f"/faxes/{fax_id}/pages/2.png").status_code == 404

    with db.session() as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.actor.like("user:%"),
                                                     AuditEntry.action.like("fax.%"))).all()
    actions = [e.action for e in entries]
    assert "fax.list" in actions and len(actions) >= 3
    assert sum(fax_id in (e.detail or "") for e in entries) >= 2  # the view and the page
    for e in entries:  # ids only: nothing read from the fax
        assert "LEE" not in (e.detail or "").upper() and "763" not in (e.detail or "")


def test_a_low_confidence_field_says_check_this_in_words(client, settings, db, people,
                                                         form_fax):
    fax_id = _receive(settings, db, form_fax)
    with db.session() as s:  # what a hard-to-read form would give
        row = s.get(ReceivedFax, fax_id)
        reading = dict(row.reading)
        reading["fields"] = dict(reading["fields"], **{
            "patient.given_name": {"value": "AHN", "confidence": 0.42, "source": "ocr"}})
        row.reading = reading
    sign_in(client, STAFF)
    html = client.get(f"/faxes/{fax_id}").text
    field = html[html.index('data-field="patient.given_name"'):]
    field = field[:field.index("</div>")]
    assert "Check this: read with 42% confidence" in field
    assert 'aria-describedby="fx-patient-given-name-conf"' in field


def test_a_draft_that_does_not_validate_comes_back_with_errors_and_values(
        client, settings, db, people, form_fax):
    fax_id = _receive(settings, db, form_fax)
    sign_in(client, STAFF)
    html = client.get(f"/faxes/{fax_id}").text
    form = _draft_form(html)
    form["patient.birth_date"] = "2091-01-01"  # a typo: in the future
    form["goals"] = "GARDEN"
    r = client.post(f"/faxes/{fax_id}/referral", data=form)
    assert r.status_code == 422
    again = r.text
    error = re.search(r'id="fx-patient-birth-date-error">(.*?)</span>\s*(.*?)</span>', again,
                      re.S)
    assert error and "future" in error.group(2)
    assert 'href="#fx-patient-birth-date"' in again  # the summary links to the field
    assert re.search(r'name="patient.birth_date" value="2091-01-01"', again)
    assert ">GARDEN</textarea>" in again
    with db.session() as s:
        assert s.get(ReceivedFax, fax_id).status == "read"
        assert s.scalar(select(Referral.id)) is None


def test_staff_create_a_referral_from_the_corrected_draft(client, settings, db, people,
                                                          form_fax):
    fax_id = _receive(settings, db, form_fax)
    sign_in(client, STAFF)
    form = _draft_form(client.get(f"/faxes/{fax_id}").text)
    assert form["csrf_token"] and form["practice_id"]
    form.update({k: v for k, v in VALUES.items() if k != "goals"})  # checked against the page
    form["goals"] = "WALK TO THE STORE, GARDEN"  # a correction
    r = client.post(f"/faxes/{fax_id}/referral", data=form)
    assert r.status_code == 302
    referral_id = r.location.rsplit("/", 1)[1]
    assert r.location.endswith(f"/referrals/{referral_id}")
    page = client.get(r.location).text
    assert "Referral created from the fax" in page
    with db.session() as s:
        fax = s.get(ReceivedFax, fax_id)
        referral = s.get(Referral, referral_id)
        assert (fax.status, fax.referral_id) == ("referral", referral_id)
        assert referral.payload["goals"] == ["WALK TO THE STORE", "GARDEN"]
        assert referral.payload["patient"]["family_name"] == "LEE"
        assert s.scalar(select(ReferralEvent.id).where(ReferralEvent.referral_id == referral_id,
                                                       ReferralEvent.kind == "fax"))
    done = client.get(f"/faxes/{fax_id}").text
    assert "Create referral" not in done and f"/referrals/{referral_id}" in done
    # handled once: a second click is told so, and nothing else is created
    again = client.post(f"/faxes/{fax_id}/referral", data=form)
    assert again.status_code == 302 and again.location.endswith(f"/faxes/{fax_id}")
    with db.session() as s:
        assert len(s.scalars(select(Referral.id)).all()) == 1


def test_archive_needs_a_reason_and_leaves_the_waiting_list(client, settings, db, people):
    fax_id = _receive(settings, db, _blank_fax(), number="+1 612 555 0111")
    sign_in(client, STAFF)
    html = client.get(f"/faxes/{fax_id}").text
    assert "free-form" in html and "no practice matched" in html
    r = client.post(f"/faxes/{fax_id}/archive", data={"csrf_token": token(html), "reason": " "})
    assert r.status_code == 422 and "Say why the fax is archived." in r.text
    r = client.post(f"/faxes/{fax_id}/archive",
                    data={"csrf_token": token(html), "reason": "an advert"})
    assert r.status_code == 302 and r.location.endswith("/faxes")
    assert f"/faxes/{fax_id}" not in client.get("/faxes").text
    archived = client.get("/faxes?show=archived").text
    assert f"/faxes/{fax_id}" in archived
    assert "an advert" in client.get(f"/faxes/{fax_id}").text


def test_attach_by_the_offices_reference(client, settings, db, people, auth, referral_body):
    r = client.post("/api/v1/referrals", json=dict(referral_body, external_id="NFM-77"),
                    headers=auth)
    referral_id = r.get_json()["id"]
    fax_id = _receive(settings, db, _blank_fax())
    sign_in(client, STAFF)
    html = client.get(f"/faxes/{fax_id}").text
    r = client.post(f"/faxes/{fax_id}/attach", data={"csrf_token": token(html),
                                                     "referral": "NFM-99"})
    assert r.status_code == 422 and "No referral has this id or reference." in r.text
    assert 'value="NFM-99"' in r.text
    r = client.post(f"/faxes/{fax_id}/attach", data={"csrf_token": token(html),
                                                     "referral": "NFM-77"})
    assert r.status_code == 302 and r.location.endswith(f"/referrals/{referral_id}")
    with db.session() as s:
        assert s.get(ReceivedFax, fax_id).status == "attached"


def test_the_blank_form_is_public_one_page_and_names_no_practice(client):
    r = client.get("/forms/referral.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    assert "public" in r.headers["Cache-Control"] and "max-age" in r.headers["Cache-Control"]
    assert r.headers.get("ETag")
    assert client.get("/forms/referral.pdf",
                      headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
    assert _barcodes(r.data) == [("referral", 1, None)]


def test_the_portal_form_is_printed_for_the_practice(client, db, people, practice):
    assert client.get("/portal/forms/referral.pdf").status_code == 302  # signed out
    sign_in(client, OFFICE)
    assert "/portal/forms/referral.pdf" in client.get("/portal/").text
    r = client.get("/portal/forms/referral.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    assert "private" in r.headers["Cache-Control"]
    assert _barcodes(r.data) == [("referral", 1, practice[0])]


def _barcodes(pdf_bytes: bytes) -> list:
    pdf = pypdfium2.PdfDocument(pdf_bytes)
    try:
        assert len(pdf) == 1
        image = pdf[0].render(scale=200 / 72, grayscale=True).to_pil()
    finally:
        pdf.close()
    return [parse_barcode_text(found.text) for found in
            zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]


class _DraftForm(HTMLParser):
    """The draft form's fields as a browser would post them (checked boxes only)."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict = {}
        self.inside = False
        self.textarea: str | None = None
        self.select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("action", "").endswith("/referral")
        if not self.inside or "name" not in a:
            if tag == "option" and self.select and "selected" in a:
                self.data[self.select] = a.get("value", "")
            return
        name = a["name"]
        if tag == "textarea":
            self.textarea, self.data[name] = name, ""
        elif tag == "select":
            self.select, self.data[name] = name, ""
        elif tag == "input":
            if a.get("type") in ("checkbox", "radio"):
                if "checked" in a:
                    self.data.setdefault(name, []).append(a.get("value", ""))
            else:
                self.data[name] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self.textarea = None
        elif tag == "select":
            self.select = None

    def handle_data(self, data):
        if self.textarea:
            self.data[self.textarea] += data


def _draft_form(html: str) -> dict:
    parser = _DraftForm()
    parser.feed(html)
    return parser.data
