"""The chart / referrer summary PDF: facts, risk, flags, plan, rules with evidence."""

from __future__ import annotations

import pytest
from documents_pdf_checks import fill_colours, font_sizes, fonts, metadata, page_texts, plain

from refflow.documents.summary import render_summary


@pytest.fixture(scope="module")
def summary(referral, sample_plan, clinic) -> bytes:
    return render_summary(referral, sample_plan, clinic)


def test_summary_has_facts_risk_flags_plan_and_evidence(summary, sample_plan, clinic):
    text = plain(" ".join(page_texts(summary)))
    for fact in ("Lee, Ann", "1951-03-02", "Dr. R. Patel", "M81.0", "-2.8", "vertebral T12"):
        assert fact in text
    assert "C – vertebral or multiple fractures" in text
    for reason in sample_plan["risk"]["reasons"]:
        assert plain(reason)[1:] in text  # first letter may be capitalised
    for flag in sample_plan["flags"]:
        assert plain(flag["message"]) in text
    for exercise in sample_plan["exercises"]:
        assert exercise["name"] in text
    for evidence in sample_plan["evidence"]:
        assert plain(evidence["source"]) in text
    assert "Rules applied and evidence" in text
    assert clinic.phone in text and clinic.fax in text


def test_summary_is_readable_when_faxed(summary, clinic):
    assert min(font_sizes(summary)) >= 10
    assert fill_colours(summary) <= {"0 g", "0 G"}  # black only: no grey fills
    used = fonts(summary)
    assert used and all(used.values())
    assert metadata(summary)["/Author"] == clinic.name


def test_summary_prints_unknowns_for_a_minimal_referral(minimal_referral, do_not_exercise_plan,
                                                        clinic):
    text = plain(" ".join(page_texts(render_summary(minimal_referral, do_not_exercise_plan,
                                                    clinic, paper="a4"))))
    assert "DO NOT EXERCISE" in text
    assert "No exercises prescribed" in text
    assert "Fractures not known" in text  # absent = not known, never "none"
    assert "possible new fracture" in text.lower()


def test_review_summary_says_held_for_review(referral, review_plan, clinic):
    text = plain(" ".join(page_texts(render_summary(referral, review_plan, clinic))))
    assert "HELD FOR REVIEW" in text and "NEEDS REVIEW" in text
