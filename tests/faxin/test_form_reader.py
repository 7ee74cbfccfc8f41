"""Reading a received fax (``faxin.reading.read_fax``) of refflow's referral
form: filled in by typewriter or printer, or in handwriting-style capitals,
faxed at normal and fine resolution, fed askew, upside down and specked —
and a fax that is not the form.

The faxes are made by the benchmark's generator (bench/faxed_forms.py):
the form PDF with values written in, through refflow's own PDF → TIFF Class F
converter, read back through ``faxin.pages.page_images`` as a received fax is.
Each fax is read once per module (reading a page takes about two seconds).
"""

from __future__ import annotations

import re

import pytest
from reportlab.lib.pagesizes import LETTER
from reportlab.pdfgen.canvas import Canvas

from refflow.documents.referral_form import FIELDS
from refflow.faxin import draft, form_reader, ocr
from refflow.faxin.pages import page_images
from refflow.faxin.reading import read_fax
from refflow.intake.validation import parse_referral

PRACTICE = "0b5c1e2a-6a7e-4a35-9a0e-5d2f0c1b9e77"


def normal(value: str) -> str:
    return re.sub(r"\s+,", ",", " ".join(str(value).upper().split()))


def wrong_fields(reading, truth: dict) -> dict:
    return {name: (value, reading.fields[name].value) for name, value in truth.items()
            if normal(reading.fields[name].value) != normal(value)}


# Typed (a typewriter's Courier; a printer's DejaVu Sans), askew and specked,
# at both resolutions, one of them upside down.
TYPED = {
    "mono-normal-skewed-specked": dict(style="mono", resolution="normal", skew=1.5, noise=4,
                                       seed=1),
    "sans-fine-upside-down-skewed-specked": dict(style="sans", resolution="fine", skew=-2.0,
                                                 noise=4, upside_down=True, seed=2),
}


@pytest.fixture(scope="module", params=sorted(TYPED))
def typed(request, faxed_forms):
    fax = faxed_forms.faxed_form(faxed_forms.DESIGN_EXAMPLE, **TYPED[request.param])
    return read_fax(page_images(fax))


def test_typed_form_reads_back_exactly(typed, faxed_forms):
    assert typed.form is not None
    assert (typed.form.form, typed.form.version, typed.form.practice_id, typed.form.page) \
        == ("referral", 1, PRACTICE, 0)
    assert set(typed.fields) == {f.name for f in FIELDS}
    assert wrong_fields(typed, faxed_forms.DESIGN_EXAMPLE) == {}
    assert all(0.0 <= v.confidence <= 1.0 for v in typed.fields.values())
    assert typed.fields["patient.birth_date"].value == "1951-03-02"  # ISO
    assert typed.fields["referrer.fax"].value == "+17635550198"  # E.164
    assert typed.fields["clinical.mobility_aid"].source == "checkbox"


def test_typed_form_draft_is_a_valid_referral(typed):
    referral = parse_referral(typed.draft)
    assert referral.patient.family_name == "LEE"
    assert str(referral.patient.birth_date) == "1951-03-02"
    assert referral.referrer.npi == "1234567893"
    assert referral.diagnosis.codes == ["M81.0"]
    assert referral.clinical.t_score == -2.8
    assert referral.clinical.fractures[0].site == "vertebral"
    assert str(referral.clinical.fractures[0].date) == "2026-05-01"
    assert referral.clinical.conditions == ["HYPERTENSION", "I25.10"]
    assert referral.clinical.can_rise_from_floor is True
    assert referral.clinical.injurious_fall is False
    assert referral.urgency == "routine"
    assert referral.goals == ["WALK TO THE STORE", "GARDEN"]


def test_typed_page_has_its_text_too(typed):
    assert len(typed.pages) == 1
    page = typed.pages[0]
    assert "Lakeside Physical Therapy" in page.text or "Fax to" in page.text
    assert 0.0 < page.confidence <= 1.0
    assert typed.seconds > 0


@pytest.fixture(scope="module")
def handwritten(faxed_forms):
    """Two forms in handwriting-style capitals: normal resolution askew and
    specked, fine resolution upside down."""
    out = []
    for seed, options in ((3, dict(resolution="normal", skew=1.0, noise=4)),
                          (4, dict(resolution="fine", skew=-1.5, noise=4, upside_down=True))):
        values = faxed_forms.sample_values(seed, full=True)
        fax = faxed_forms.faxed_form(values, style="hand", seed=seed, **options)
        out.append((values, read_fax(page_images(fax))))
    return out


def test_handwriting_gives_values_with_confidences(handwritten):
    """Measured on the benchmark's set: about three fields in four exactly
    right (Tesseract has no handwriting model); a wrong value mostly carries a
    low confidence, which is what the review screen shows."""
    right = wrong = 0
    right_conf, wrong_conf = [], []
    for values, reading in handwritten:
        assert reading.form is not None and reading.form.practice_id == PRACTICE
        mistakes = wrong_fields(reading, values)
        for name in values:
            confidence = reading.fields[name].confidence
            assert 0.0 <= confidence <= 1.0
            if name in mistakes:
                wrong += 1
                wrong_conf.append(confidence)
            else:
                right += 1
                right_conf.append(confidence)
        # every checkbox and choice is read right: marks are ink, not letters
        for f in FIELDS:
            if f.kind in ("choice", "checkbox"):
                assert f.name not in mistakes, f.name
    assert right / (right + wrong) >= 0.6
    assert sum(wrong_conf) / len(wrong_conf) < sum(right_conf) / len(right_conf) - 0.3
    assert sum(c < 0.5 for c in wrong_conf) >= len(wrong_conf) / 2


def test_a_blank_form_gives_empty_fields(faxed_forms):
    fax = faxed_forms.faxed_form({}, resolution="normal", skew=0.7, noise=4, practice_id=None)
    reading = read_fax(page_images(fax))
    assert reading.form is not None and reading.form.practice_id is None
    assert {name: v.value for name, v in reading.fields.items() if v.value} == {}
    assert reading.draft == {}


def test_a_page_that_is_not_the_form_gives_its_text_and_no_form(tmp_path):
    out = tmp_path / "letter.pdf"
    c = Canvas(str(out), pagesize=LETTER)
    c.setFont("Helvetica", 14)
    lines = ["Northside Family Medicine", "Dear colleague,",
             "Please see Mrs Lee for an exercise program for her osteoporosis.",
             "She had a spine fracture in May. Thank you."]
    for i, line in enumerate(lines):
        c.drawString(72, 700 - 24 * i, line)
    c.showPage()
    c.save()
    reading = read_fax(page_images(out.read_bytes()))
    assert reading.form is None and reading.fields == {} and reading.draft == {}
    assert "exercise program" in reading.pages[0].text
    assert reading.pages[0].confidence > 0.8
    assert reading.as_json()["form"] is None


# -- the draft ---------------------------------------------------------------------------
def test_draft_of_the_full_form_validates(faxed_forms):
    for values in (faxed_forms.DESIGN_EXAMPLE, faxed_forms.sample_values(7, full=True)):
        payload = draft.referral_payload(values)
        parse_referral(payload)  # raises InvalidReferral naming any bad field


def test_draft_maps_choices_checkboxes_and_lists():
    payload = draft.referral_payload({
        "patient.family_name": "LEE", "patient.given_name": "ANN",
        "patient.birth_date": "03/02/1951", "patient.sex": "female",
        "diagnosis.codes": "M81.0 M54.5", "urgency": "x",
        "clinical.fractures": "vertebral,wrist", "clinical.fractures.date": "2026-05-01",
        "clinical.falls_last_12_months": "2", "clinical.can_rise_from_floor": "no",
        "clinical.medications": "ALENDRONATE 70 MG, VITAMIN D\nCALCIUM",
        "deliver.email_to_patient": "no", "notes": "", "goals": " ",
    })
    assert payload["patient"]["birth_date"] == "1951-03-02"
    assert payload["diagnosis"]["codes"] == ["M81.0", "M54.5"]
    assert payload["urgency"] == "urgent"
    assert payload["clinical"]["fractures"] == [{"site": "vertebral"}, {"site": "wrist"}]
    assert "2026-05-01" in payload["notes"]  # two sites: whose date it is, a person says
    assert payload["clinical"]["falls_last_12_months"] == 2
    assert payload["clinical"]["can_rise_from_floor"] is False
    assert payload["clinical"]["medications"] == ["ALENDRONATE 70 MG", "VITAMIN D", "CALCIUM"]
    assert payload["deliver"] == {"email_to_patient": False}
    assert "goals" not in payload
    parse_referral(payload)


def test_draft_leaves_out_empty_values_and_passes_bad_ones_on():
    assert draft.referral_payload({name: "" for name in (f.name for f in FIELDS)}) == {}
    payload = draft.referral_payload({"clinical.t_score": "2.B", "clinical.fractures": "none"})
    assert payload == {"clinical": {"t_score": "2.B", "fractures": []}}


# -- the pieces --------------------------------------------------------------------------
def test_checks_by_kind():
    f = {x.name: x for x in FIELDS}
    assert form_reader.CHECKS["date"](f["patient.birth_date"], "03021951") == ("1951-03-02",
                                                                             True)
    assert form_reader.CHECKS["date"](f["patient.birth_date"], "13451951")[1] is False
    assert form_reader.CHECKS["npi"](f["referrer.npi"], "1234567893") == ("1234567893", True)
    assert form_reader.CHECKS["npi"](f["referrer.npi"], "1234567894")[1] is False
    assert form_reader.CHECKS["phone"](f["referrer.fax"], "7635550198") == ("+17635550198",
                                                                           True)
    assert form_reader.CHECKS["phone"](f["referrer.fax"], "0005550198")[1] is False
    # the full stop is put back; a piece too short to be a code continues the one before
    assert form_reader.CHECKS["icd10"](f["diagnosis.codes"], "M810 M54 5") \
        == ("M81.0 M54.5", True)
    assert form_reader.CHECKS["icd10"](f["diagnosis.codes"], "MB1.O") == ("M81.0", True)
    assert form_reader.CHECKS["icd10"](f["diagnosis.codes"], "M81.0 M54.5") \
        == ("M81.0 M54.5", True)
    assert form_reader.CHECKS["number"](f["clinical.t_score"], "28") == ("-2.8", True)
    assert form_reader.CHECKS["number"](f["clinical.frax.hip"], " 31") == ("3.1", True)
    assert form_reader.CHECKS["number"](f["clinical.pain.score"], "12")[1] is False


def test_one_tesseract_engine_per_thread():
    import threading

    here = ocr.engine()
    assert ocr.engine() is here
    there = []
    thread = threading.Thread(target=lambda: there.append(ocr.engine()))
    thread.start()
    thread.join()
    assert there[0] is not here


def test_missing_language_data_is_said_plainly(tmp_path):
    with pytest.raises(ocr.OcrUnavailable, match="tessdata_dir"):
        ocr.tessdata_path(str(tmp_path))
