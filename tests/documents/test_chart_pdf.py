"""The chart record PDF: facts, risk, flags, plan, rules with evidence (the clinic's full record)."""

from __future__ import annotations

import pytest
from documents_pdf_checks import fill_colours, font_sizes, fonts, metadata, page_texts, plain

from refflow.documents.chart import render_chart


@pytest.fixture(scope="module")
def chart(referral, sample_plan, clinic) -> bytes:
    return render_chart(referral, sample_plan, clinic)


def test_chart_has_facts_risk_flags_plan_and_evidence(chart, sample_plan, clinic):
    text = plain(" ".join(page_texts(chart)))
    for fact in ("Lee, Ann", "March 2, 1951", "Dr. R. Patel", "M81.0", "-2.8", "vertebral T12"):
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


def test_chart_is_readable_when_faxed(chart, clinic):
    assert min(font_sizes(chart)) >= 10
    assert fill_colours(chart) <= {"0 g", "0 G"}  # black only: no grey fills
    used = fonts(chart)
    assert used and all(used.values())
    assert metadata(chart)["/Author"] == clinic.name


def test_chart_prints_unknowns_for_a_minimal_referral(minimal_referral, do_not_exercise_plan,
                                                        clinic):
    text = plain(" ".join(page_texts(render_chart(minimal_referral, do_not_exercise_plan,
                                                    clinic, paper="a4"))))
    assert "DO NOT EXERCISE" in text
    assert "No exercises prescribed" in text
    assert "Fractures not known" in text  # absent = not known, never "none"
    assert "possible new fracture" in text.lower()


def test_review_chart_says_held_for_review(referral, review_plan, clinic):
    text = plain(" ".join(page_texts(render_chart(referral, review_plan, clinic))))
    assert "HELD FOR REVIEW" in text and "NEEDS REVIEW" in text


def test_chart_prints_structured_conditions_and_medication_courses(referral, sample_plan, clinic):
    """A condition's status and date, and a steroid's route and courses: what the
    plan was decided on, as the staff page shows it."""
    clinical = referral.clinical.model_copy(update={
        "conditions": referral.clinical.__class__.model_validate({"conditions": [
            "hypertension", {"text": "pulmonary embolism", "status": "resolved", "since": "2015-03-01"},
            {"code": "M06.9", "status": "stable"}]}).conditions,
        "medications": referral.clinical.__class__.model_validate({"medications": [
            {"name": "prednisolone", "route": "eye"},
            {"name": "prednisone", "courses": [{"start": "2026-03-01", "days": 5,
                                                "dose_mg_per_day": 40}]}]}).medications})
    text = plain(" ".join(page_texts(render_chart(referral.model_copy(update={"clinical": clinical}),
                                                  sample_plan, clinic))))
    assert "pulmonary embolism (resolved, since 2015-03-01)" in text
    assert "M06.9 (stable)" in text
    assert "prednisolone (eye)" in text and "5 days from 2026-03-01 at 40 mg/day" in text
