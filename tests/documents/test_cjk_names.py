"""Chinese, Japanese and Korean names print in every document and in the fax:
the characters DejaVu Sans has no glyph for are drawn with WenQuanYi Micro Hei
(fonts-wqy-microhei), never as empty boxes."""

from __future__ import annotations

import datetime as dt
import io
import logging

import pytest
from documents_pdf_checks import char_fonts, page_texts, plain
from PIL import Image, ImageChops

from refflow.documents import fonts
from refflow.documents.cover import render_cover
from refflow.documents.decline_letter import render_decline
from refflow.documents.fax import pdfs_to_fax_tiff
from refflow.documents.names import CHART, DECLINE, FAX, HANDOUT, SUMMARY
from refflow.documents.render import render_all
from refflow.intake.schemas import Referral
from refflow.planning.engine import build_plan

NAMES = [("李", "小龍"), ("田中", "花子"), ("김", "민준")]
DOCTOR = "田中 花子 先生"
SENT = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)


def referral(family: str, given: str) -> Referral:
    return Referral.model_validate({
        "patient": {"given_name": given, "family_name": family, "birth_date": "1956-04-10",
                    "sex": "female", "email": "patient@example.org"},
        "referrer": {"name": DOCTOR, "fax": "+1 763 555 0198"},
        "diagnosis": {"codes": ["M85.80"], "text": "osteopenia"},
        "clinical": {"t_score": -1.9, "fractures": [], "falls_last_12_months": 0,
                     "mobility_aid": "none", "can_rise_from_floor": True, "conditions": [],
                     "medications": [], "activity_level": "light"},
        "goals": ["stay strong"]})


def drawn_with_cjk_font(pdf: bytes, text: str) -> bool:
    """Every character of ``text`` is in the page text, drawn with the CJK font."""
    used = char_fonts(pdf)
    return all(ch.isspace() or any("WenQuanYi" in f for f in used.get(ch, ()))
               for ch in text)


@pytest.fixture(scope="module", params=NAMES, ids=["chinese", "japanese", "korean"])
def documents(request, clinic):
    family, given = request.param
    ref = referral(family, given)
    docs = render_all(ref, build_plan(ref, as_of=dt.date(2026, 11, 25)), clinic, now=SENT)
    docs.update(render_decline(ref, clinic, reason="不明", decided_at=SENT))
    return family, given, docs


@pytest.mark.parametrize("name", [HANDOUT, SUMMARY, CHART, DECLINE])
def test_the_patients_name_prints_in_every_pdf(documents, name):
    family, given, docs = documents
    pdf = docs[name]
    text = plain(" ".join(page_texts(pdf)))
    assert family in text and given in text
    assert drawn_with_cjk_font(pdf, family + given)
    assert "\ufffd" not in text


def test_the_cover_names_the_doctor(clinic):
    pdf = render_cover(referral("李", "小龍"), clinic, total_pages=2, sent_at=SENT)
    assert DOCTOR in plain(" ".join(page_texts(pdf)))
    assert drawn_with_cjk_font(pdf, DOCTOR)


def test_the_fax_shows_the_summary_as_checked(documents):
    # The fax's second page is the summary PDF whose glyphs were checked above.
    _, _, docs = documents
    alone = pdfs_to_fax_tiff([docs[SUMMARY]])
    with Image.open(io.BytesIO(docs[FAX])) as fax, Image.open(io.BytesIO(alone)) as page:
        fax.seek(1)
        assert ImageChops.difference(fax.convert("L"), page.convert("L")).getbbox() is None


def test_a_missing_cjk_font_still_renders_and_warns_once(monkeypatch, caplog, clinic):
    monkeypatch.setattr(fonts, "CJK_FILE", fonts.CJK_FILE.with_name("no-such-font.ttc"))
    monkeypatch.setattr(fonts, "_cjk", None)
    monkeypatch.setattr(fonts, "_cjk_tried", False)
    ref = referral("李", "小龍")
    plan = build_plan(ref, as_of=dt.date(2026, 11, 25))
    with caplog.at_level(logging.WARNING, logger=fonts.__name__):
        for _ in range(2):
            docs = render_all(ref, plan, clinic, now=SENT)
    assert docs[SUMMARY].startswith(b"%PDF-") and docs[FAX][:4] == b"II*\x00"
    warnings = [r for r in caplog.records if "fonts-wqy-microhei" in r.getMessage()]
    assert len(warnings) == 1
