"""The hold rules issue 16 added, from cases of our own: frailty (NICE NG249,
Otago), severe lung disease and long-term oxygen, a T-score that contradicts
the diagnosis in either direction, a patient who prefers another language,
and "none" meaning none. Each case starts from a plain osteopenia referral that
is released on its own, so the one change is what holds (or releases) it."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from refflow.intake.schemas import Referral
from refflow.intake.validation import InvalidReferral, parse_referral
from refflow.planning.engine import build_plan

AS_OF = dt.date(2026, 12, 1)
PLAIN = {
    "patient": {"given_name": "Rosa", "family_name": "Vance", "birth_date": "1950-02-14", "sex": "female"},
    "diagnosis": {"codes": ["M85.80"], "text": "osteopenia"},
    "clinical": {"t_score": -1.8, "fractures": [], "falls_last_12_months": 0, "mobility_aid": "none",
                 "can_rise_from_floor": True, "conditions": [], "medications": [],
                 "activity_level": "light", "exercise_history": "gardens",
                 "blood_pressure": {"systolic": 126, "diastolic": 80}},
}


def plan_for(patient=None, clinical=None, diagnosis=None, notes=None) -> dict:
    data = copy.deepcopy(PLAIN)
    data["patient"].update(patient or {})
    data["clinical"].update(clinical or {})
    if diagnosis is not None:
        data["diagnosis"] = diagnosis
    if notes is not None:
        data["notes"] = notes
    return build_plan(Referral.model_validate(data), as_of=AS_OF)


def flags(plan: dict) -> dict[str, str]:
    return {f["code"]: f["severity"] for f in plan["flags"]}


def test_the_plain_referral_is_released() -> None:
    plan = plan_for()
    assert plan["decision"] == "release", flags(plan)


# ---- frailty: not only the count of falls -----------------------------------

@pytest.mark.parametrize("patient, clinical, notes", [
    pytest.param({"birth_date": "1939-06-01"}, {"mobility_aid": "cane"}, None, id="87_with_a_cane"),
    pytest.param({"birth_date": "1938-01-20"}, {"can_rise_from_floor": False}, None,
                 id="88_cannot_get_up_from_the_floor"),
    pytest.param({}, {"can_rise_from_floor": False}, "Widowed, lives alone in a second-floor flat.",
                 id="cannot_rise_and_lives_alone_in_the_notes"),
    pytest.param({}, {"can_rise_from_floor": False},
                 "Had her flu vaccine in October. Lives alone since her husband died.",
                 id="lives_alone_in_notes_that_also_name_a_vaccine"),
    pytest.param({}, {"mobility_aid": "cane", "falls_last_12_months": 1}, None, id="cane_and_one_fall"),
    pytest.param({}, {"conditions": ["frailty", "lives alone"]}, None, id="frail_and_living_alone"),
    pytest.param({"birth_date": "1936-03-03"}, {"falls_last_12_months": 1}, None, id="90_with_one_fall"),
])
def test_signs_of_frailty_hold_the_plan_for_a_falls_assessment(patient, clinical, notes) -> None:
    plan = plan_for(patient, clinical, notes=notes)
    assert plan["decision"] == "review"
    assert flags(plan)["frailty_falls_review"] == "needs_review"
    message = next(f["message"] for f in plan["flags"] if f["code"] == "frailty_falls_review")
    assert "Otago" in message and "falls assessment" in message


@pytest.mark.parametrize("patient, clinical", [
    pytest.param({"birth_date": "1939-06-01"}, {}, id="87_fit_and_steady"),
    pytest.param({}, {"mobility_aid": "cane"}, id="cane_only"),
    pytest.param({}, {"conditions": ["lives alone"]}, id="lives_alone_only"),
])
def test_one_sign_alone_without_a_fall_does_not_hold(patient, clinical) -> None:
    assert "frailty_falls_review" not in flags(plan_for(patient, clinical))


def test_repeated_falls_are_held_once_not_twice() -> None:
    plan = plan_for({"birth_date": "1937-01-01"}, {"falls_last_12_months": 3, "mobility_aid": "walker"})
    codes = flags(plan)
    assert codes["high_falls_risk"] == "needs_review"
    assert "frailty_falls_review" not in codes


# ---- severe lung disease and long-term oxygen --------------------------------

@pytest.mark.parametrize("clinical", [
    pytest.param({"conditions": ["COPD GOLD 4"]}, id="gold_4"),
    pytest.param({"conditions": ["emphysema, on home oxygen 2 L"]}, id="home_oxygen_in_a_condition"),
    pytest.param({"medications": ["oxygen 2 L/min at night"]}, id="oxygen_as_a_medication"),
    pytest.param({"conditions": ["J96.10"]}, id="chronic_respiratory_failure_code"),
    pytest.param({"conditions": ["pulmonary hypertension"]}, id="pulmonary_hypertension"),
])
def test_severe_lung_disease_or_oxygen_is_held(clinical) -> None:
    plan = plan_for(clinical=clinical)
    assert plan["decision"] == "review"
    assert flags(plan)["severe_lung_disease"] == "needs_review"


def test_mild_asthma_is_a_caution_not_a_hold() -> None:
    plan = plan_for(clinical={"conditions": ["asthma"], "medications": ["salbutamol inhaler"]})
    assert plan["decision"] == "release"
    assert flags(plan)["chronic_lung_disease"] == "caution"


# ---- the T-score against the diagnosis, both ways ------------------------------

@pytest.mark.parametrize("diagnosis, t_score, says", [
    pytest.param({"codes": ["M85.80"], "text": "osteopenia"}, -0.4, "normal", id="osteopenia_normal_t"),
    pytest.param({"codes": ["M81.0"], "text": "osteoporosis"}, -1.6, "above -2.5",
                 id="osteoporosis_osteopenic_t"),
    pytest.param({"text": "postmenopausal osteoporosis"}, 0.3, "above -2.5", id="osteoporosis_normal_t"),
    pytest.param({"codes": ["M85.80"]}, -2.9, "osteoporosis range", id="osteopenia_osteoporotic_t"),
])
def test_a_t_score_that_contradicts_the_diagnosis_is_held(diagnosis, t_score, says) -> None:
    plan = plan_for(clinical={"t_score": t_score}, diagnosis=diagnosis)
    assert plan["decision"] == "review"
    message = next(f["message"] for f in plan["flags"] if f["code"] == "diagnosis_tscore_mismatch")
    assert f"{t_score:g}" in message and says in message


def test_osteoporosis_by_fracture_needs_no_osteoporotic_t_score() -> None:
    """A low-trauma fracture makes osteoporosis a clinical diagnosis at any T-score."""
    plan = plan_for(clinical={"t_score": -1.7, "fractures": [
        {"site": "wrist", "date": "2024-02-01", "low_trauma": True}]},
        diagnosis={"codes": ["M81.0"], "text": "osteoporosis"})
    assert "diagnosis_tscore_mismatch" not in flags(plan)


# ---- the patient's language ----------------------------------------------------

@pytest.mark.parametrize("language, name", [("es", "Spanish"), ("zh-Hant", "Chinese"), ("vi", "Vietnamese")])
def test_a_patient_who_prefers_another_language_is_flagged_for_staff(language, name) -> None:
    plan = plan_for({"preferred_language": language})
    assert plan["decision"] == "review"
    message = next(f["message"] for f in plan["flags"] if f["code"] == "interpreter_needed")
    assert name in message and "interpreter" in message


@pytest.mark.parametrize("language", ["en", "en-US", "en-GB"])
def test_english_in_any_region_needs_no_interpreter(language) -> None:
    assert "interpreter_needed" not in flags(plan_for({"preferred_language": language}))


# ---- "none" means none; the structured entries are validated -------------------

@pytest.mark.parametrize("entries", [["None"], ["nil"], ["No known conditions"], ["none."], ["N/A"]])
def test_none_written_as_a_condition_means_none(entries) -> None:
    referral = Referral.model_validate({**PLAIN, "clinical": {**PLAIN["clinical"], "conditions": entries,
                                                              "medications": ["none"]}})
    assert referral.clinical.conditions == [] and referral.clinical.medications == []
    plan = build_plan(referral, as_of=AS_OF)
    assert plan["decision"] == "release"
    assert "unrecognised_conditions" not in flags(plan)


def test_none_beside_a_real_condition_keeps_the_condition() -> None:
    plan = plan_for(clinical={"conditions": ["none", "Parkinson's disease"]})
    assert flags(plan)["neurological_or_vestibular_condition"] == "needs_review"


@pytest.mark.parametrize("entry, field, says", [
    ({"status": "resolved"}, "clinical.conditions.0", "text or an ICD-10-CM code"),
    ({"text": "RA", "status": "better"}, "clinical.conditions.0.status", "'stable'"),
    ({"code": "PE-26"}, "clinical.conditions.0.code", "ICD-10-CM"),
    ({"text": "PE", "since": "1940-01-01"}, "body", "before the birth date"),
])
def test_a_malformed_structured_condition_names_its_field(entry, field, says) -> None:
    data = copy.deepcopy(PLAIN)
    data["clinical"]["conditions"] = [entry]
    with pytest.raises(InvalidReferral) as raised:
        parse_referral(data, today=AS_OF)
    assert says in raised.value.fields[field]


@pytest.mark.parametrize("entry, field, says", [
    ({"name": "prednisone", "route": "nasal"}, "clinical.medications.0.route", "'inhaled'"),
    ({"name": "prednisone", "course": "continuous", "courses": [{"start": "2026-01-05", "days": 5}]},
     "clinical.medications.0", "intermittent"),
    ({"name": "prednisone", "courses": [{"start": "2026-01-05", "days": 0}]},
     "clinical.medications.0.courses.0.days", "greater than or equal to 1"),
])
def test_a_malformed_medication_names_its_field(entry, field, says) -> None:
    data = copy.deepcopy(PLAIN)
    data["clinical"]["medications"] = [entry]
    with pytest.raises(InvalidReferral) as raised:
        parse_referral(data, today=AS_OF)
    assert says in raised.value.fields[field]


# ---- what the reviewer reads is what the referral said -------------------------

def test_a_past_condition_is_quoted_in_the_referrals_words() -> None:
    plan = plan_for(clinical={"conditions": [
        "pulmonary embolism 2015, resolved",
        {"text": "pneumonia", "status": "resolved", "since": "2024-01-10"},
        "rheumatoid arthritis, stable"]})
    message = next(f["message"] for f in plan["flags"] if f["code"] == "past_condition")
    assert "pulmonary embolism 2015, resolved" in message
    assert "pneumonia (resolved, since 2024-01-10)" in message
    assert "deep vein thrombosis" not in message  # a group's name, not what was written
    assert "arthritis" not in message  # stable arthritis has its own caution, said once
    assert flags(plan)["inflammatory_arthritis_stable"] == "caution"


def test_long_term_steroids_raise_nothing_when_the_category_is_already_the_highest() -> None:
    plan = plan_for(clinical={
        "fractures": [{"site": "vertebral", "level": "T12", "date": "2026-06-01", "low_trauma": True}],
        "medications": [{"name": "prednisone", "dose_mg_per_day": 7.5, "since": "2025-11-01"}]},
        diagnosis={"codes": ["M81.0"], "text": "osteoporosis"})
    assert plan["risk"]["bone_category"] == "C"
    assert "glucocorticoid_upgrade" not in flags(plan)
    assert not any("glucocorticoid" in r for r in plan["risk"]["reasons"])
    assert flags(plan)["fracture_on_glucocorticoid"] == "needs_review"


# ---- a code that says osteoporosis and a fracture at once ---------------------

@pytest.mark.parametrize("code", ["M80.08XA", "M80.0AXA", "M80.88XA"])
def test_osteoporosis_with_a_fracture_code_alone_is_in_scope(code) -> None:
    """M80.x is "osteoporosis with current pathological fracture": with no text
    beside it, it is still an osteoporosis referral (never "out of scope"), and a
    vertebral one (M80.08, M80.88) is the very-high-risk category."""
    plan = plan_for(diagnosis={"codes": [code]})
    assert "diagnosis_out_of_scope" not in flags(plan)
    assert plan["exercises"]
    assert plan["risk"]["bone_category"] == ("C" if code[5] == "8" else "B")
