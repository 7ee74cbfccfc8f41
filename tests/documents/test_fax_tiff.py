"""The fax: TIFF Class F as a fax server accepts it, checked by HylaFAX's and libtiff's tools.

tiffcheck's data-format flag names the coding the server will transmit:
-1 is Group 3 1-D (what we write: Compression 3, T4Options without 2-D),
-2 Group 3 2-D, -3 Group 4 (MMR) — so -1 is the check that must say OK.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess

import pytest
from documents_pdf_checks import find_tool, page_texts, plain
from PIL import Image, ImageSequence

from refflow.documents.cover import render_cover
from refflow.documents.fax import pdf_to_fax_tiff
from refflow.documents.handout import render_handout
from refflow.documents.render import render_fax

SENT = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)  # 21:00 the day before in Chicago
FORMATS = {
    ("fine", "letter"): (196, 280, 2156),
    ("normal", "letter"): (98, 280, 1078),
    ("fine", "a4"): (196, 297, 2291),
    ("normal", "a4"): (98, 297, 1145),
}


@pytest.fixture(scope="module")
def faxes(referral, sample_plan, clinic, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fax")
    out = {}
    for (resolution, paper) in FORMATS:
        path = folder / f"{resolution}-{paper}.tiff"
        path.write_bytes(render_fax(referral, sample_plan, clinic, resolution=resolution,
                                    paper=paper, sent_at=SENT))
        out[resolution, paper] = path
    return out


@pytest.mark.parametrize("resolution,paper", list(FORMATS))
def test_tiffcheck_accepts_the_fax_as_it_is(faxes, resolution, paper):
    lines_per_inch, length_mm, _ = FORMATS[resolution, paper]
    result = subprocess.run(
        [find_tool("tiffcheck"), "-r", str(lines_per_inch), "-w", "1728", "-l", str(length_mm),
         "-1", str(faxes[resolution, paper])], capture_output=True, text=True, check=False)
    assert result.stdout.splitlines()[0] == "OK", result.stdout + result.stderr


def _directories(path) -> list[str]:
    out = subprocess.run([find_tool("tiffinfo"), str(path)], capture_output=True, text=True,
                         check=True).stdout
    return [d for d in re.split(r"=== TIFF directory \d+ ===", out) if d.strip()]


@pytest.mark.parametrize("resolution,paper", list(FORMATS))
def test_tiffinfo_shows_tiff_class_f(faxes, resolution, paper):
    lines_per_inch, _, rows = FORMATS[resolution, paper]
    pages = _directories(faxes[resolution, paper])
    assert len(pages) == 2  # cover + the one-page summary
    for index, info in enumerate(pages):
        assert f"Image Width: 1728 Image Length: {rows}" in info
        assert f"Resolution: 204, {lines_per_inch} pixels/inch" in info
        assert "Bits/Sample: 1" in info
        assert "Compression Scheme: CCITT Group 3" in info
        assert "Photometric Interpretation: min-is-white" in info
        assert f"Rows/Strip: {rows}" in info  # one strip per page
        assert "FillOrder: msb-to-lsb" in info
        assert "Samples/Pixel: 1" in info
        assert f"Page Number: {index}-{len(pages)}" in info
        assert "Subfile Type: multi-page document" in info


def test_fax_pages_are_white_paper_with_black_text(faxes):
    with Image.open(faxes["fine", "letter"]) as tiff:
        assert tiff.n_frames >= 2
        for page in ImageSequence.Iterator(tiff):
            grey = page.convert("L")
            histogram = grey.histogram()
            total = grey.width * grey.height
            assert histogram[255] / total > 0.8  # mostly white
            assert histogram[0] / total > 0.005  # real black text


def test_cover_page_counts_pages_and_dates_in_the_clinic_zone(referral, clinic):
    text = plain(" ".join(page_texts(render_cover(referral, clinic, total_pages=4,
                                                  sent_at=SENT))))
    assert "Tuesday, November 24, 2026, 9:00 PM CST" in text
    assert "4 (including this cover page)" in text
    assert "Dr. R. Patel" in text and "(763) 555-0198" in text
    assert clinic.phone in text and clinic.fax in text
    assert "CONFIDENTIALITY NOTICE" in text
    assert "Ann" not in text and "Lee" not in text  # no patient details on the cover


def test_cover_page_count_matches_the_fax(faxes):
    # The cover's "N (including this cover page)" equals the number of directories.
    pages = len(_directories(faxes["fine", "letter"]))
    with Image.open(faxes["fine", "letter"]) as tiff:
        assert tiff.n_frames == pages


def test_any_pdf_converts(referral, sample_plan, clinic, tmp_path):
    pdf = render_handout(referral, sample_plan, clinic, paper="a4")
    path = tmp_path / "handout.tiff"
    path.write_bytes(pdf_to_fax_tiff(pdf, resolution="normal", paper="letter"))
    pages = _directories(path)
    assert len(pages) == len(page_texts(pdf)) > 1
    assert "Image Length: 1078" in pages[0]


def test_fax_without_referrer_details(minimal_referral, do_not_exercise_plan, clinic, tmp_path):
    path = tmp_path / "fax.tiff"
    path.write_bytes(render_fax(minimal_referral, do_not_exercise_plan, clinic))
    result = subprocess.run([find_tool("tiffcheck"), "-r", "196", "-w", "1728", "-l", "280",
                             "-1", str(path)], capture_output=True, text=True, check=False)
    assert result.stdout.splitlines()[0] == "OK"


def test_bad_format_is_refused(referral, sample_plan, clinic):
    with pytest.raises(ValueError):
        render_fax(referral, sample_plan, clinic, resolution="superfine")
    with pytest.raises(ValueError):
        render_fax(referral, sample_plan, clinic, paper="legal")


def test_threshold_marks_dark_pixels_black():
    from PIL import Image

    from refflow.documents import fax

    grey = Image.new("L", (fax.FAX_WIDTH, 2), 255)
    for x, value in enumerate([0, 255, fax.THRESHOLD - 1, fax.THRESHOLD, 0, 0, 0, 0]):
        grey.putpixel((x, 0), value)
    packed = fax.to_bilevel(grey).tobytes()  # set bits are ink
    assert len(packed) == 2 * fax.FAX_WIDTH // 8
    assert packed[0] == 0b10101111 and not any(packed[1:])


def test_coded_pages_decode_to_the_same_ink(tmp_path):
    # A page through the G3 coder and our container reads back pixel for
    # pixel, ink black on white paper (min-is-white), where it was drawn.
    from PIL import Image, ImageChops, ImageDraw

    from refflow.documents import fax
    from refflow.documents.g3 import encode_g3

    fmt = fax.FaxFormat("normal", "letter")
    page = Image.new("1", (fax.FAX_WIDTH, fmt.rows), 0)
    ImageDraw.Draw(page).rectangle((100, 40, 899, 59), fill=1)
    ImageDraw.Draw(page).line((0, 500, fax.FAX_WIDTH - 1, 500), fill=1)
    path = tmp_path / "page.tiff"
    path.write_bytes(fax._write_tiff_f([encode_g3(page), encode_g3(page)], fmt))
    with Image.open(path) as tiff:
        assert tiff.n_frames == 2
        decoded = tiff.convert("1")
    assert decoded.getpixel((100, 40)) == 0 and decoded.getpixel((99, 40)) == 255
    assert decoded.getpixel((5, 500)) == 0 and decoded.getpixel((5, 501)) == 255
    assert ImageChops.invert(decoded.convert("L")).tobytes() == page.convert("L").tobytes()


def test_concurrent_faxes_are_identical(referral, sample_plan, clinic):
    # PDFium is not thread-safe even across documents: the module lock keeps
    # two faxes rendered at once in a threaded server from crashing or mixing.
    from concurrent.futures import ThreadPoolExecutor

    def one(_):
        return render_fax(referral, sample_plan, clinic, sent_at=SENT)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, range(8)))
    assert all(r == results[0] for r in results)


def test_a_pdf_pdfium_cannot_open_is_a_clear_error(referral, sample_plan, clinic):
    from refflow.documents import fax
    from refflow.documents.chart import render_chart

    with pytest.raises(fax.PdfError, match="could not open"):
        fax.pdfs_to_fax_tiff([b"%PDF-1.4 this is not a PDF"])
    assert issubclass(fax.PdfError, ValueError)
    # Nothing stays held: the next conversion goes through.
    assert not fax.PDFIUM_LOCK.locked()
    assert fax.pdfs_to_fax_tiff([render_chart(referral, sample_plan, clinic)])


def _tiffcheck(path, resolution: str, paper: str) -> str:
    lines_per_inch, length_mm, _ = FORMATS[resolution, paper]
    return subprocess.run(
        [find_tool("tiffcheck"), "-r", str(lines_per_inch), "-w", "1728", "-l", str(length_mm),
         "-1", str(path)], capture_output=True, text=True, check=False).stdout


def _crowded(referral, review_plan):
    """A held plan with 20 long flags for a patient and a doctor with 200-character names."""
    import copy

    plan = copy.deepcopy(review_plan)
    plan["flags"] += [{"code": f"clinic_rule_{n}", "severity": "needs_review",
                       "message": "A long message from one of the clinic's own checks " * 4,
                       "source": "plugin"} for n in range(20)]
    long = ("Villanueva-Hernandez de la Cruz y Montenegro " * 5)[:200]
    return referral.model_copy(update={
        "patient": referral.patient.model_copy(update={"given_name": long, "family_name": long}),
        "referrer": referral.referrer.model_copy(update={"name": long})}), plan


@pytest.mark.parametrize("resolution,paper", list(FORMATS))
def test_the_fax_is_two_pages_even_for_the_longest_plans(referral, review_plan,
                                                         do_not_exercise_plan, clinic, tmp_path,
                                                         resolution, paper):
    crowded, plan = _crowded(referral, review_plan)
    for name, (ref, p) in {"crowded": (crowded, plan),
                           "dne": (referral, do_not_exercise_plan)}.items():
        path = tmp_path / f"{name}.tiff"
        path.write_bytes(render_fax(ref, p, clinic, resolution=resolution, paper=paper,
                                    sent_at=SENT))
        with Image.open(path) as tiff:
            assert tiff.n_frames == 2
        assert _tiffcheck(path, resolution, paper).splitlines()[0] == "OK"


@pytest.mark.parametrize("resolution,paper", list(FORMATS))
def test_the_not_accepted_letters_fax_is_two_pages(referral, review_plan, clinic, tmp_path,
                                                   resolution, paper):
    from refflow.documents.decline_letter import render_decline
    from refflow.documents.names import DECLINE_FAX

    crowded, _ = _crowded(referral, review_plan)
    reason = "The referral does not say enough about the recent fracture to plan safely. " * 13
    path = tmp_path / "decline.tiff"
    path.write_bytes(render_decline(crowded, clinic, reason=reason[:1000], decided_at=SENT,
                                    resolution=resolution, paper=paper)[DECLINE_FAX])
    with Image.open(path) as tiff:
        assert tiff.n_frames == 2
    assert _tiffcheck(path, resolution, paper).splitlines()[0] == "OK"


def test_the_cover_follows_the_clinics_locale(referral, clinic):
    import dataclasses

    british = dataclasses.replace(clinic, locale="en_GB")
    text = plain(" ".join(page_texts(render_cover(referral, british, total_pages=2,
                                                  sent_at=SENT))))
    assert "Tuesday, 24 November 2026, 21:00 CST" in text
