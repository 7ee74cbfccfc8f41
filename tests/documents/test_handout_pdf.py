"""The patient handout PDF: content, large type, embedded fonts, metadata, decisions."""

from __future__ import annotations

import pytest
from documents_pdf_checks import font_sizes, fonts, metadata, page_texts, plain

from refflow.documents.handout import render_handout


@pytest.fixture(scope="module")
def handout(referral, sample_plan, clinic) -> bytes:
    return render_handout(referral, sample_plan, clinic)


def test_handout_names_every_exercise_and_the_clinic(referral, sample_plan, clinic, handout):
    text = plain(" ".join(page_texts(handout)))
    for exercise in sample_plan["exercises"]:
        assert exercise["name"] in text
        assert plain(exercise["dose"]["text"]).lower() in text.lower()
        assert plain(exercise["safety_cue"]) in text
    assert clinic.name in text and clinic.phone in text
    assert "Stop and call us if" in text
    assert "Your week" in text and "Mon" in text and "✓" in text
    assert "My exercise log" in text
    for precaution in sample_plan["precautions"]:
        assert plain(precaution) in text


def test_handout_from_the_engine_plan_names_its_exercises(referral, release_plan, clinic):
    text = plain(" ".join(page_texts(render_handout(referral, release_plan, clinic))))
    for exercise in release_plan.get("exercises") or []:
        assert plain(exercise["name"]) in text
    assert clinic.phone in text


def test_handout_body_is_large_type(handout):
    sizes = font_sizes(handout)
    assert sizes and min(sizes) >= 12


def test_handout_fonts_are_embedded_and_metadata_names_the_clinic(handout, clinic):
    used = fonts(handout)
    assert used and all(used.values()), used
    assert not any("Helvetica" in name or "Times" in name for name in used)
    meta = metadata(handout)
    assert meta["/Author"] == clinic.name
    assert meta["/Title"]
    assert "Lee" not in meta["/Title"] and "Ann" not in meta["/Title"]  # no PHI in metadata


def test_review_plan_handout_is_marked_draft(referral, review_plan, clinic):
    pdf = render_handout(referral, review_plan, clinic)
    texts = page_texts(pdf)
    assert all("DRAFT" in text for text in texts)  # every page
    assert "DRAFT – not yet approved" in plain(texts[0])
    assert "DRAFT" in metadata(pdf)["/Title"]


def test_do_not_exercise_handout_has_no_exercises(referral, do_not_exercise_plan, sample_plan,
                                                  clinic):
    text = plain(" ".join(page_texts(render_handout(referral, do_not_exercise_plan, clinic))))
    assert "Please do not start exercises until you have seen your doctor" in text
    assert "or go to urgent care" in text  # guidance 3.1
    assert "Stop and call us if" in text and clinic.phone in text
    for exercise in sample_plan["exercises"]:
        assert exercise["name"] not in text
    assert "My exercise log" not in text


def test_handout_copes_with_a_sparse_plan_and_a4(minimal_referral, clinic):
    plan = {"decision": "release", "exercises": [
        {"id": "x", "name": "Marching on the spot", "dose": {"sets": None, "reps": None,
         "hold_seconds": None, "minutes": None, "text": ""}, "days_per_week": None,
         "instructions": None, "safety_cue": None, "progression": None, "regression": None,
         "equipment": None}], "weekly_schedule": None, "precautions": None,
        "stop_and_call_if": None, "phases": None}
    pdf = render_handout(minimal_referral, plan, clinic, paper="a4")
    assert "Marching on the spot" in plain(" ".join(page_texts(pdf)))


def test_an_exercise_of_a_later_stage_says_when_to_start(referral, sample_plan, clinic):
    """An exercise the plan starts in a later stage (``phase_from``) must not
    read as one to do from the first day: its card and its row in "Your week"
    name the week it starts (the first week of that stage)."""
    import copy

    plan = copy.deepcopy(sample_plan)
    number, later = next((n, ex) for n, ex in enumerate(plan["exercises"], 1)
                         if ex["id"] == "tandem-stance")
    later["phase_from"] = 2  # stage 2 starts in week 5 in this plan
    text = plain(" ".join(page_texts(render_handout(referral, plan, clinic))))
    card = text.split(later["name"], 1)[1]
    assert card.lstrip(" .").startswith("Do:") and ", from week 5." in card.split("1.", 1)[0]
    assert f"{number} (from week 5)" in text  # its row in "Your week"
    assert text.count("from week") == 2  # first-stage exercises start now


def test_the_default_clinic_number_is_not_the_example_patients_own(referral, tmp_path):
    """With no clinic configured, the example referral's handout must not tell
    the patient to call their own phone number."""
    from refflow.config import load_settings
    from refflow.documents.clinic import ClinicInfo

    clinic = ClinicInfo.from_settings(load_settings({}, data_dir=tmp_path, secret_key="x"))
    text = plain(" ".join(page_texts(render_handout(referral, {"decision": "release"}, clinic))))
    assert f"Call us at {clinic.phone}" in text
    assert clinic.phone != referral.patient.phone and clinic.phone.replace(" ", "") != \
        referral.patient.phone


def test_the_exercise_log_covers_the_twelve_weeks_on_one_page(referral, sample_plan, clinic):
    """Guidance 4.1: twelve weeks to the target level, then review; the log
    sheet has a row for each, and the notes, on one page."""
    pages = page_texts(render_handout(referral, sample_plan, clinic))
    [log] = [p for p in pages if "My exercise log" in p]
    rows = [line.split()[0] for line in log.splitlines() if line.split()
            and line.split()[0].isdigit()]
    first = rows.index("1")
    assert rows[first:first + 12] == [str(week) for week in range(1, 13)]
    assert "Notes for your therapist" in log
