"""refflow's referral form (``documents.referral_form``): one page, a barcode a
fax machine's page still carries, fields that are the referral's own."""

from __future__ import annotations

import itertools
import typing

import pypdfium2
import pytest

from refflow.documents import referral_form as rf
from refflow.documents.clinic import ClinicInfo
from refflow.documents.fax import pdf_to_fax_tiff
from refflow.faxin.barcode import read_form_barcode
from refflow.faxin.pages import page_images
from refflow.intake import schemas

CLINIC = ClinicInfo("Lakeside Physical Therapy", "+1 763 555 0100", "+1 763 555 0101")
PRACTICE = "0b5c1e2a-6a7e-4a35-9a0e-5d2f0c1b9e77"


def _pages(pdf: bytes) -> list[tuple[float, float]]:
    doc = pypdfium2.PdfDocument(pdf)
    try:
        return [doc.get_page_size(i) for i in range(len(doc))]
    finally:
        doc.close()


@pytest.mark.parametrize("paper, size", [("letter", (612, 792)), ("a4", (595.28, 841.89))])
def test_the_form_is_one_page(paper, size):
    pages = _pages(rf.render_form(CLINIC, practice_id=PRACTICE, practice_name="Northside Family",
                                  paper=paper))
    assert len(pages) == 1
    assert pages[0] == pytest.approx(size, abs=0.5)


@pytest.mark.parametrize("resolution", ["normal", "fine"])
@pytest.mark.parametrize("practice_id", [PRACTICE, None])
def test_the_barcode_reads_after_a_fax(resolution, practice_id):
    pdf = rf.render_form(CLINIC, practice_id=practice_id)
    page = page_images(pdf_to_fax_tiff(pdf, resolution=resolution))[0]
    found = read_form_barcode(page)
    assert found is not None
    assert (found.form, found.version, found.practice_id) == ("referral", 1, practice_id)
    assert found.orientation == 0


def test_the_barcode_reads_on_a4_too():
    pdf = rf.render_form(CLINIC, practice_id=PRACTICE, paper="a4")
    page = page_images(pdf_to_fax_tiff(pdf, resolution="normal", paper="a4"))[0]
    assert read_form_barcode(page).practice_id == PRACTICE


def test_the_barcode_holds_the_form_identity_only():
    assert rf.barcode_text(PRACTICE) == f"refflow:referral:1:{PRACTICE}"
    assert rf.barcode_text() == "refflow:referral:1:-"
    assert rf.parse_barcode_text(rf.barcode_text(PRACTICE)) == ("referral", 1, PRACTICE)
    assert rf.parse_barcode_text(rf.barcode_text()) == ("referral", 1, None)
    assert rf.parse_barcode_text("https://example.org/") is None


def test_qr_modules_are_three_scan_lines_at_normal_resolution():
    import segno

    modules = segno.make(rf.barcode_text(PRACTICE), error="m", micro=False).symbol_size(
        border=0)[0]
    assert rf.QR_BOX.height / modules * 98 / 72 >= 3.0


def test_field_names_are_unique_and_kinds_known():
    names = [f.name for f in rf.FIELDS]
    assert len(names) == len(set(names))
    assert {f.kind for f in rf.FIELDS} <= set(rf.KINDS)
    for f in rf.FIELDS:
        assert f.label and f.label == f.label.strip()
        assert (f.kind == "choice") == bool(f.choices)
        if f.kind in ("date", "phone", "npi", "number", "email", "icd10"):
            assert f.comb, f.name


def test_choices_are_the_referrals_own_values():
    values = {f.name: {c.value for c in f.choices} for f in rf.FIELDS if f.choices}
    assert values["patient.sex"] <= set(typing.get_args(
        schemas.Patient.model_fields["sex"].annotation))
    assert values["clinical.mobility_aid"] <= set(typing.get_args(schemas.MobilityAid))
    assert values["clinical.activity_level"] <= set(typing.get_args(schemas.ActivityLevel))
    assert values["clinical.fractures"] - {"none"} == set(typing.get_args(schemas.FractureSite))
    for name in ("clinical.injurious_fall", "clinical.can_rise_from_floor",
                 "deliver.email_to_patient", "deliver.fax_to_referrer"):
        assert values[name] == {"yes", "no"}


def test_every_field_fills_a_place_in_the_referral():
    """Each field's name is a path of the referral (but the latest fracture's
    date, which the draft puts in the notes)."""
    for f in rf.FIELDS:
        if f.name == "clinical.fractures.date":
            continue
        model = schemas.Referral
        for part in f.name.split("."):
            assert part in model.model_fields, f.name
            annotation = model.model_fields[part].annotation
            inner = [a for a in typing.get_args(annotation) if isinstance(a, type)
                     and issubclass(a, schemas.Strict)]
            model = inner[0] if inner else annotation


def _boxes(f):
    if f.choices:
        return [c.box for c in f.choices]
    if f.cells:
        return list(f.cells)
    return [f.box]


def test_boxes_lie_inside_the_corner_squares_and_never_overlap():
    inner = (rf.FIDUCIALS[0].right, rf.FIDUCIALS[0].bottom,
             rf.FIDUCIALS[3].x, rf.FIDUCIALS[3].y)
    boxes = [(f.name, box) for f in rf.FIELDS for box in _boxes(f)]
    for name, box in boxes:
        assert inner[0] < box.x and box.right < inner[2], name
        assert inner[1] < box.y and box.bottom < inner[3], name
    for (a_name, a), (b_name, b) in itertools.combinations(boxes, 2):
        overlap = (a.x < b.right - 0.01 and b.x < a.right - 0.01
                   and a.y < b.bottom - 0.01 and b.y < a.bottom - 0.01)
        assert not overlap, (a_name, b_name)
    q = rf.QR_BOX
    for name, box in boxes:  # the QR code's quiet zone (4 modules) is free
        assert box.y > q.bottom + 10 or box.right < q.x - 10, name


def test_comb_cells_fit_a_capital_letter_at_fax_resolution():
    for f in rf.FIELDS:
        for cell in f.cells:
            assert cell.width >= 14 and cell.height >= 20  # about 40 x 27 pixels at 204 x 98
    for f in rf.FIELDS:
        for choice in f.choices:
            assert choice.box.width >= 12


def test_cell_text_writes_values_as_the_boxes_hold_them():
    assert rf.cell_text(rf.field("patient.birth_date"), "1951-03-02") == "03021951"
    assert rf.cell_text(rf.field("patient.phone"), "+17635550100") == "7635550100"
    assert rf.cell_text(rf.field("clinical.t_score"), "-2.8") == "28"
    assert rf.cell_text(rf.field("clinical.frax.hip"), "3.1") == " 31"
    assert rf.cell_text(rf.field("clinical.frax.major_osteoporotic"), "22.0") == "220"
    assert rf.cell_text(rf.field("clinical.falls_last_12_months"), "1") == " 1"
