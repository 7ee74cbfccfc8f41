"""The PDF speed-ups write exactly what plain ReportLab would have written.

Both are checked byte for byte with ReportLab's ``invariant`` mode (fixed
dates and document ids): the cached, pre-compressed font subsets
(``fonts.SubsetCachingTTFont``) and the printable-ASCII fast path of
``layout.Flow.text``.
"""

from __future__ import annotations

import pytest
from documents_pdf_checks import page_texts, plain
from reportlab import rl_config
from reportlab.pdfbase.pdfmetrics import getFont

from refflow.documents import layout, render_handout, render_summary
from refflow.documents.cover import render_cover
from refflow.documents.fonts import BOLD, REGULAR, ensure_fonts


@pytest.fixture
def invariant(monkeypatch):
    monkeypatch.setattr(rl_config, "invariant", 1)


def _documents(referral, plan, clinic) -> list[bytes]:
    return [render_handout(referral, plan, clinic), render_summary(referral, plan, clinic),
            render_cover(referral, clinic, total_pages=3)]


def test_cached_font_subsets_match_reportlab(invariant, monkeypatch, referral, review_plan,
                                             clinic):
    ensure_fonts()
    cached = _documents(referral, review_plan, clinic)
    for name in (REGULAR, BOLD):
        font = getFont(name)
        monkeypatch.setattr(font.face, "addSubsetObjects", font._face_add_subset_objects)
    assert _documents(referral, review_plan, clinic) == cached


def test_ascii_fast_path_matches_reportlab(invariant, monkeypatch, referral, release_plan, clinic):
    fast = _documents(referral, release_plan, clinic)
    monkeypatch.setattr(layout.Flow, "_ascii_subset", lambda self, name: "")
    assert _documents(referral, release_plan, clinic) == fast


def test_text_with_pdf_delimiters_reads_back():
    flow = layout.Flow(title="t")
    line = r"Dose (2 sets) \ 10-12 reps; café – ✓"
    flow.paragraph(line, layout.Style())
    flow.paragraph("", layout.Style())
    assert line in plain(page_texts(flow.finish())[0])
