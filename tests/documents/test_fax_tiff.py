"""The fax: TIFF Class F as a fax server accepts it, checked by HylaFAX's and libtiff's tools.

tiffcheck's data-format flag names the coding the server will transmit:
-1 is Group 3 1-D (what we write: Compression 3, T4Options without 2-D),
-2 Group 3 2-D, -3 Group 4 (MMR) — so -1 is the check that must say OK.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess

import pytest
from documents_pdf_checks import find_tool, page_texts, plain
from PIL import Image, ImageSequence

from refflow.documents import pdf_to_fax_tiff, render_fax, render_handout
from refflow.documents.cover import render_cover

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
    assert len(pages) >= 2  # cover + summary
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
    assert "Tuesday, November 24, 2026, 21:00 CST" in text
    assert "4 (including this cover page)" in text
    assert "Dr. R. Patel" in text and "+1 763-555-0198" in text
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
    assert len(pages) >= 4
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


def _summary_pages(referral, sample_plan, clinic):
    """The summary's fax pages as 8-bit grey arrays (what the coder is given)."""

    from refflow.documents import fax
    from refflow.documents.summary import render_summary

    return fax.render_pages([render_summary(referral, sample_plan, clinic)], fax.FaxFormat())


def test_libtiff_coder_matches_pillows_public_path(referral, sample_plan, clinic):
    # The fast coder calls libtiff through ctypes (so it codes without the GIL);
    # it must give the very strip Pillow's public save of a mode "1" image gives,
    # and must really be in use here (not silently falling back).
    from refflow.documents import fax, g3

    coder = g3._libtiff_coder()
    assert coder is not None
    for grey in _summary_pages(referral, sample_plan, clinic)[:2]:
        packed = fax.threshold_and_pack(grey)
        fast = coder.encode(packed, fax.FAX_WIDTH)
        assert fast == g3.encode_g3_public(packed, fax.FAX_WIDTH)
        assert fast.t4_options == g3.T4_FILL_BITS and fast.fill_order == 1


def test_threshold_marks_dark_pixels_black():
    import numpy as np

    from refflow.documents import fax

    grey = np.full((2, fax.FAX_WIDTH), 255, np.uint8)
    grey[0, :8] = [0, 255, fax.THRESHOLD - 1, fax.THRESHOLD, 0, 0, 0, 0]
    packed = fax.threshold_and_pack(grey)
    assert packed.shape == (2, fax.FAX_WIDTH // 8)
    assert packed[0, 0] == 0b10101111 and not packed[0, 1:].any() and not packed[1].any()


def test_concurrent_faxes_are_identical(referral, sample_plan, clinic):
    # PDFium is not thread-safe even across documents: the module lock keeps
    # two faxes rendered at once in a threaded server from crashing or mixing.
    from concurrent.futures import ThreadPoolExecutor

    def one(_):
        return render_fax(referral, sample_plan, clinic, sent_at=SENT)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, range(8)))
    assert all(r == results[0] for r in results)


def test_without_a_usable_libtiff_pages_are_coded_through_pillow(monkeypatch):
    # A machine where libtiff cannot be called directly still gets the same fax.
    import numpy as np

    from refflow.documents import fax, g3

    grey = np.full((20, fax.FAX_WIDTH), 255, np.uint8)
    grey[5:15, 100:300] = 0
    packed = fax.threshold_and_pack(grey)
    fast = g3.encode_g3(packed, fax.FAX_WIDTH)
    monkeypatch.setattr(g3, "_libtiff_paths", list)
    assert g3._find_libtiff_coder() is None
    monkeypatch.setattr(g3, "_coder", None)
    monkeypatch.setattr(g3, "_coder_checked", True)
    assert g3.encode_g3(packed, fax.FAX_WIDTH) == fast


def test_parallel_lanes_give_the_same_pages(referral, sample_plan, clinic):
    # Pages cut into bands, rendered by two PDFium instances on two threads in
    # whatever order the lanes get to them, decode to exactly the pages one
    # lane makes, and the file is the same every time (tiffcheck is run on the
    # default, two-lane, conversion above).
    import numpy as np
    from PIL import Image

    from refflow.documents import pdfium_instances
    from refflow.documents.cover import render_cover
    from refflow.documents.fax import pdfs_to_fax_tiff
    from refflow.documents.summary import render_summary

    pdfs = [render_cover(referral, clinic, total_pages=3, sent_at=SENT),
            render_summary(referral, sample_plan, clinic)]
    one_lane, two_lanes = pdfs_to_fax_tiff(pdfs, lanes=1), pdfs_to_fax_tiff(pdfs, lanes=2)
    for _ in range(3):
        assert pdfs_to_fax_tiff(pdfs, lanes=2) == two_lanes
    with Image.open(io.BytesIO(one_lane)) as a, Image.open(io.BytesIO(two_lanes)) as b:
        assert a.n_frames == b.n_frames >= 3
        for page in range(a.n_frames):
            a.seek(page)
            b.seek(page)
            assert np.array_equal(np.asarray(a), np.asarray(b)), f"page {page + 1} differs"
    if pdfium_instances.MAX_EXTRAS:
        assert pdfium_instances._extras, "no second PDFium instance was loaded"
        assert not any(i.reserved.locked() for i in pdfium_instances._extras)


def test_a_pdf_pdfium_cannot_open_is_a_clear_error(referral, sample_plan, clinic):
    from refflow.documents import pdfium_instances
    from refflow.documents.fax import pdfs_to_fax_tiff
    from refflow.documents.summary import render_summary

    with pytest.raises(ValueError, match="could not open"):
        pdfs_to_fax_tiff([b"%PDF-1.4 this is not a PDF"], lanes=2)
    # Nothing stays held: the next conversion still gets every lane.
    assert pdfs_to_fax_tiff([render_summary(referral, sample_plan, clinic)], lanes=2)
    assert not any(i.reserved.locked() for i in pdfium_instances._extras)


def test_a_worker_with_a_process_per_core_converts_on_one_lane(monkeypatch):
    # Lanes only pay when cores are spare: a worker whose pool already has a
    # process per core gives each fax one lane; with spare cores it gets them.
    from types import SimpleNamespace

    from refflow.documents import fax
    from refflow.workers.celery_app import _fax_lanes_for_this_worker

    monkeypatch.setattr(fax, "DEFAULT_LANES", fax.DEFAULT_LANES)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    _fax_lanes_for_this_worker(sender=SimpleNamespace(concurrency=2))
    assert fax.DEFAULT_LANES == 1
    _fax_lanes_for_this_worker(sender=SimpleNamespace(concurrency=1))
    assert fax.DEFAULT_LANES == 2
    _fax_lanes_for_this_worker(sender=SimpleNamespace(concurrency="auto"))
    assert fax.DEFAULT_LANES == 2
