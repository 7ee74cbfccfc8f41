"""Clinical vignettes written from ../shared/clinical/guidance.md.

Each test names the guidance section it checks; together with the property
tests they trace every rule to a test (docs/plan-engine.md has the table).
"""

from __future__ import annotations

import datetime as dt
import json

from refflow.planning.engine import build_plan

AS_OF = dt.date(2026, 6, 1)  # same as the as_of fixture


def days_ago(n: int) -> str:
    return (AS_OF - dt.timedelta(days=n)).isoformat()


def birth_for_age(age: int) -> str:
    return AS_OF.replace(year=AS_OF.year - age, day=1).isoformat()


def ids(plan):
    return {e["id"] for e in plan["exercises"]}


def flag_codes(plan, severity=None):
    return {f["code"] for f in plan["flags"] if severity is None or f["severity"] == severity}


def excluded(plan):
    return {x["id"]: x["rule"] for x in plan["excluded_exercises"]}


OTAGO_LEGS = {"sit_to_stand", "seated_knee_extension_weight", "standing_knee_flexion_weight",
              "standing_hip_abduction", "heel_raises", "toe_raises"}


def test_vertebral_fracture_4_weeks_ago(make_referral, as_of, invariants):
    """§2.1 C, §3.2 recent_fracture_lt_12wk, §4 C column (no flexion, low impact, moderate aerobic)."""
    r = make_referral(clinical={"fractures": [{"site": "vertebral", "date": days_ago(28), "low_trauma": True}]})
    plan = build_plan(r, as_of=as_of)
    invariants(plan, r)
    assert plan["risk"]["bone_category"] == "C"
    assert plan["decision"] == "review"
    assert "recent_fracture_lt_12wk" in flag_codes(plan, "needs_review")
    assert "recommend_pt" in flag_codes(plan)
    assert not any(e["spinal_flexion"] for e in plan["exercises"])
    assert all(e["impact"] in ("none", "low") for e in plan["exercises"])
    assert plan["targets"]["aerobic"]["effort_max"]["3"] <= 6
    assert plan["targets"]["strength"]["effort_max"] == {"1": 4, "2": 5, "3": 6}
    assert "gentle_seated_rotation" in excluded(plan)
    walking = [e for e in plan["exercises"] if e["category"] == "aerobic"]
    assert walking and "bouts of 10 minutes" in walking[0]["dose"]["text"]
    assert any("lift anything from the floor" in p for p in plan["precautions"])
    assert "spinal_extensor" in plan["targets"]


def test_age_90_walker_repeated_falls(make_referral, as_of, invariants):
    """§2.2 falls overlay + F-review, §4 F column (Otago legs, strength 3 d/wk, supported balance, no floor)."""
    r = make_referral(patient={"birth_date": birth_for_age(92)},
                      clinical={"falls_last_12_months": 3, "mobility_aid": "walker", "can_rise_from_floor": False})
    plan = build_plan(r, as_of=as_of)
    invariants(plan, r)
    assert plan["risk"]["falls_high"] is True
    assert plan["decision"] == "review"
    assert {"high_falls_risk", "recommend_falls_service"} <= flag_codes(plan)
    assert OTAGO_LEGS <= ids(plan)
    assert plan["targets"]["strength"]["days_per_week"] == 3
    assert "brisk_walking" not in ids(plan) and "walking_comfortable" in ids(plan)
    assert excluded(plan)["brisk_walking"] in ("avoid_for_falls_risk", "no_brisk_walking_program_falls_risk")
    assert excluded(plan)["glute_bridge"] == "no_floor_exercises"
    assert "tai_chi" not in ids(plan)
    for e in plan["exercises"]:
        if e["category"] == "balance":
            # the first step says what to hold: a counter, a wall or a rail
            assert any(word in e["instructions"][0] for word in ("counter", "wall", "rail", "sturdy"))
            # beside the support always; hand support itself is reduced step by step
            # (guidance 4 F overlay), so no cue says "always keep a hand on it"
            assert "beside a sturdy support" in e["safety_cue"]
            assert "keep a hand" not in e["safety_cue"].lower()
    assert plan["targets"]["strength"]["effort_max"]["3"] <= 6
    assert plan["targets"]["aerobic"]["minutes_per_week"] < 150


def test_osteopenia_active_55_year_old_runner(make_referral, as_of, invariants):
    """§2.1 A; §4 A column: moderate impact from phase 2, jogging for a habitual runner, never high impact."""
    r = make_referral(patient={"birth_date": birth_for_age(55)},
                      diagnosis={"codes": ["M85.80"], "text": "osteopenia"},
                      clinical={"t_score": -1.8, "activity_level": "active",
                                "exercise_history": "runs 3 times a week", "gym_access": True})
    plan = build_plan(r, as_of=as_of)
    invariants(plan, r)
    assert plan["risk"]["bone_category"] == "A"
    assert plan["risk"]["falls_high"] is False
    assert plan["decision"] == "release"
    assert "jogging" in ids(plan) and "jogging" not in excluded(plan)
    impact = [e for e in plan["exercises"] if e.get("component") == "impact"]
    assert impact and all(e["phase_from"] >= 2 for e in impact)
    assert plan["targets"]["impact"]["days_per_week"] >= 3
    for high in ("jump_rope", "tennis", "box_jumps", "high_impact_aerobics"):
        assert excluded(plan)[high] in ("never_in_home_plan", "no_high_impact")
    assert plan["targets"]["strength"]["effort_max"]["3"] == 8
    assert plan["targets"]["strength"]["days_per_week"] == 3


def test_non_runner_osteopenia_gets_no_jogging(make_referral, as_of):
    r = make_referral(diagnosis={"codes": ["M85.80"]}, clinical={"t_score": -1.5})
    plan = build_plan(r, as_of=as_of)
    assert excluded(plan)["jogging"] == "jogging_only_if_habitual"
    assert "heel_drops" in ids(plan)


def test_acute_back_pain_8_of_10(make_referral, as_of, invariants):
    """§3.1 suspected_vertebral_fracture: do not exercise, zero exercises."""
    r = make_referral(clinical={"pain": {"score": 8, "site": "lower back", "since": days_ago(7)}})
    plan = build_plan(r, as_of=as_of)
    invariants(plan, r)
    assert plan["decision"] == "do_not_exercise"
    assert plan["exercises"] == []
    assert {"suspected_vertebral_fracture", "urgent_medical"} <= flag_codes(plan)  # §3.1
    assert any("doctor" in p for p in plan["precautions"])
    # a plan that is not urgent carries no urgent_medical flag
    assert "urgent_medical" not in flag_codes(build_plan(make_referral(), as_of=as_of))


def test_uncontrolled_hypertension(make_referral, as_of, invariants):
    """§3.1 bp_ge_180_110."""
    r = make_referral(clinical={"blood_pressure": {"systolic": 186, "diastolic": 104},
                                "conditions": ["uncontrolled hypertension"]})
    plan = build_plan(r, as_of=as_of)
    invariants(plan, r)
    assert plan["decision"] == "do_not_exercise"
    assert plan["exercises"] == []
    assert "bp_ge_180_110" in flag_codes(plan)


def test_man_on_long_term_glucocorticoids(make_referral, as_of, invariants):
    """§2.1 glucocorticoid upgrade: osteopenia (A) → B; impact limited to low."""
    r = make_referral(patient={"sex": "male", "birth_date": birth_for_age(68)},
                      diagnosis={"codes": ["M85.80"], "text": "osteopenia"},
                      clinical={"t_score": -2.0,
                                "medications": [{"name": "prednisolone", "dose_mg_per_day": 10,
                                                 "since": days_ago(400)}]})
    plan = build_plan(r, as_of=as_of)
    invariants(plan, r)
    assert plan["risk"]["bone_category"] == "B"
    assert "glucocorticoid_upgrade" in flag_codes(plan, "info")
    assert plan["decision"] == "release"
    assert "heel_drops" not in ids(plan)
    assert all(e["impact"] in ("none", "low") for e in plan["exercises"])


def test_glucocorticoid_upgrade_b_to_c_and_very_high_dose(make_referral, as_of):
    r = make_referral(clinical={"medications": [{"name": "prednisone", "dose_mg_per_day": 40,
                                                 "since": days_ago(120)}]})
    plan = build_plan(r, as_of=as_of)
    assert plan["risk"]["bone_category"] == "C"
    assert "glucocorticoid_very_high_dose" in flag_codes(plan, "needs_review")
    assert plan["decision"] == "review"


def test_glucocorticoid_short_course_no_upgrade(make_referral, as_of):
    r = make_referral(clinical={"medications": [{"name": "prednisone", "dose_mg_per_day": 10,
                                                 "since": days_ago(20)}]})
    assert build_plan(r, as_of=as_of)["risk"]["bone_category"] == "B"


def test_missing_t_score(make_referral, as_of, invariants):
    """§1 t_score null → classify from diagnosis, info flag missing_tscore."""
    r = make_referral(clinical={"t_score": ...})
    plan = build_plan(r, as_of=as_of)
    invariants(plan, r)
    assert "missing_tscore" in flag_codes(plan, "info")
    assert plan["risk"]["bone_category"] == "B"
    assert plan["decision"] == "release"


def test_missing_fracture_history_is_category_c_and_review(make_referral, as_of, invariants):
    """§1 fractures null → worst case C, needs_review missing_fracture_history."""
    r = make_referral(clinical={"fractures": ...})
    plan = build_plan(r, as_of=as_of)
    invariants(plan, r)
    assert plan["risk"]["bone_category"] == "C"
    assert "missing_fracture_history" in flag_codes(plan, "needs_review")


def test_missing_falls_history_is_high_falls_risk(make_referral, as_of, invariants):
    """§1 falls null → falls_high, soft flag only."""
    r = make_referral(clinical={"falls_last_12_months": ...})
    plan = build_plan(r, as_of=as_of)
    invariants(plan, r)
    assert plan["risk"]["falls_high"] is True
    assert "missing_falls_history" in flag_codes(plan, "info")  # guidance 3.3: informational
    assert "brisk_walking" not in ids(plan)
    assert plan["decision"] == "release"


def test_clean_osteoporosis_is_released(make_referral, as_of, invariants):
    """§4 B column: low impact, strength 2 non-consecutive days covering all major groups."""
    r = make_referral()
    plan = build_plan(r, as_of=as_of)
    invariants(plan, r)
    assert plan["decision"] == "release"
    assert plan["risk"]["bone_category"] == "B"
    groups = set()
    for e in plan["exercises"]:
        if e["component"] == "strength":
            groups |= set(e["muscle_groups"])
    assert {"legs", "hips", "back", "chest", "shoulders", "arms"} <= groups
    assert excluded(plan)["heel_drops"] in ("impact_above_limit", "avoid_for_category")
    assert excluded(plan)["sit_up_crunch"] == "no_loaded_or_end_range_flexion"
    assert excluded(plan)["heavy_deadlift_liftmor"] == "supervised_only"
    assert excluded(plan)["double_knee_to_chest"] in ("no_loaded_or_end_range_flexion", "avoid_for_category")
    assert plan["phases"][0]["week_from"] == 1 and plan["phases"][-1]["week_to"] is None
    assert plan["targets"]["balance"]["minutes_per_week"] >= 120
    assert {e["rule"] for e in plan["evidence"]} >= {"no_high_impact", "strength_all_major_groups",
                                                     "balance_every_plan", "aerobic_low_impact",
                                                     "concise_programme"}


def test_bp_relative_contraindication(make_referral, as_of):
    """§3.2 bp_160_179_or_100_109: review, strength effort capped."""
    r = make_referral(clinical={"blood_pressure": {"systolic": 166, "diastolic": 92}})
    plan = build_plan(r, as_of=as_of)
    assert "bp_160_179_or_100_109" in flag_codes(plan, "needs_review")
    assert max(plan["targets"]["strength"]["effort_max"].values()) <= 5


def test_cardiac_disease_by_icd_code(make_referral, as_of):
    """§3.2 cardiovascular_disease via the vocabulary (ICD-10-CM)."""
    r = make_referral(clinical={"conditions": ["I25.10"]})
    plan = build_plan(r, as_of=as_of)
    assert "cardiovascular_disease" in flag_codes(plan, "needs_review")
    assert max(plan["targets"]["aerobic"]["effort_max"].values()) <= 6


def test_unstable_angina_do_not_exercise(make_referral, as_of):
    """§3.1 unstable_cardiopulmonary_condition."""
    plan = build_plan(make_referral(clinical={"conditions": ["unstable angina"]}), as_of=as_of)
    assert plan["decision"] == "do_not_exercise" and plan["exercises"] == []


def test_cauda_equina_red_flag(make_referral, as_of):
    """§3.1 spinal_red_flag."""
    plan = build_plan(make_referral(clinical={"conditions": ["saddle anaesthesia"]}), as_of=as_of)
    assert plan["decision"] == "do_not_exercise"
    assert "spinal_red_flag" in flag_codes(plan)


def test_neurological_condition_by_synonym(make_referral, as_of):
    """§3.2 neurological_or_vestibular_condition."""
    plan = build_plan(make_referral(clinical={"conditions": ["Parkinson's disease"]}), as_of=as_of)
    assert "neurological_or_vestibular_condition" in flag_codes(plan, "needs_review")


def test_osteopenia_with_osteoporotic_t_score(make_referral, as_of):
    """§1 diagnosis_tscore_mismatch, worse category used."""
    r = make_referral(diagnosis={"codes": ["M85.80"], "text": "osteopenia"}, clinical={"t_score": -2.9})
    plan = build_plan(r, as_of=as_of)
    assert "diagnosis_tscore_mismatch" in flag_codes(plan, "needs_review")
    assert plan["risk"]["bone_category"] == "B"


def test_out_of_scope_diagnosis_gets_a_flag_not_a_plan(make_referral, as_of, invariants):
    r = make_referral(diagnosis={"codes": ["M17.11"], "text": "knee osteoarthritis"})
    plan = build_plan(r, as_of=as_of)
    invariants(plan, r)
    assert plan["decision"] == "review"
    assert plan["exercises"] == []
    assert "diagnosis_out_of_scope" in flag_codes(plan, "needs_review")


def test_under_50_is_reviewed(make_referral, as_of):
    plan = build_plan(make_referral(patient={"birth_date": birth_for_age(45)}), as_of=as_of)
    assert "age_lt_50_or_premenopausal" in flag_codes(plan, "needs_review")


def test_two_old_vertebral_fractures(make_referral, as_of, invariants):
    r = make_referral(clinical={"fractures": [
        {"site": "vertebral", "date": days_ago(800), "low_trauma": True},
        {"site": "vertebral", "date": days_ago(500)}]})
    plan = build_plan(r, as_of=as_of)
    invariants(plan, r)
    assert plan["risk"]["bone_category"] == "C"
    assert "multiple_vertebral_fractures" in flag_codes(plan, "needs_review")
    assert "recent_fracture_lt_12wk" not in flag_codes(plan)


def test_recent_hip_fracture(make_referral, as_of):
    r = make_referral(clinical={"fractures": [{"site": "hip", "date": days_ago(42), "low_trauma": True}]})
    plan = build_plan(r, as_of=as_of)
    assert plan["risk"]["bone_category"] == "B"
    assert "recent_fracture_lt_12wk" in flag_codes(plan, "needs_review")


def test_moderate_new_back_pain(make_referral, as_of):
    """§3.2 significant_back_pain (4-6 new), §3.3 recommend_pt, §5 impact capped at low."""
    r = make_referral(diagnosis={"codes": ["M85.80"]}, clinical={
        "t_score": -1.6, "pain": {"score": 5, "site": "back", "since": days_ago(14)}})
    plan = build_plan(r, as_of=as_of)
    assert "significant_back_pain" in flag_codes(plan, "needs_review")
    assert "recommend_pt" in flag_codes(plan)
    assert all(e["impact"] in ("none", "low") for e in plan["exercises"])


def test_unrecognised_condition_and_medication_surface_as_caution(make_referral, as_of):
    r = make_referral(clinical={"conditions": ["hypertension", "zzqx syndrome"],
                                "medications": ["alendronate", "mysterydrug"],
                                "blood_pressure": {"systolic": 130, "diastolic": 80}})
    plan = build_plan(r, as_of=as_of)
    cautions = {f["code"]: f["message"] for f in plan["flags"] if f["severity"] == "caution"}
    assert "zzqx syndrome" in cautions["unrecognised_conditions"]
    assert "mysterydrug" in cautions["unrecognised_medications"]
    assert plan["decision"] == "release"


def test_goal_naming_excluded_activity(make_referral, as_of):
    r = make_referral(goals=["get back to tennis", "do sit-ups again", "heavy lifting"])
    plan = build_plan(r, as_of=as_of)
    assert "goal_activity_not_advised" in flag_codes(plan)
    assert "refer_supervised_program" in flag_codes(plan)


def test_design_example(as_of, invariants):
    """DESIGN.md's example: recent vertebral fracture, CAD, prednisone → C, held for review."""
    from pathlib import Path

    from refflow.intake.schemas import Referral

    path = Path(__file__).resolve().parents[2] / "examples" / "referrals" / "design-example.json"
    r = Referral.model_validate(json.loads(path.read_text()))
    plan = build_plan(r, as_of=as_of)
    invariants(plan, r)
    assert plan["risk"]["bone_category"] == "C"
    assert plan["decision"] == "review"
    assert {"recent_fracture_lt_12wk", "cardiovascular_disease", "referrer_restrictions"} <= flag_codes(plan)
    assert "Ann" not in json.dumps(plan["flags"]) and "Lee" not in json.dumps(plan["flags"])


def test_wheelchair_user_gets_a_seated_draft_for_a_pt(make_referral, as_of, invariants):
    """§3.2 non_ambulatory (wheelchair): "Standing programme not applicable". The
    draft is held for a PT and holds only exercises done sitting, so a plan
    approved without changes never asks a wheelchair user to stand or walk."""
    r = make_referral(clinical={"mobility_aid": "wheelchair", "can_rise_from_floor": False})
    plan = build_plan(r, as_of=as_of)
    invariants(plan, r)
    assert plan["decision"] == "review"
    assert {"non_ambulatory", "high_falls_risk"} <= flag_codes(plan, "needs_review")
    assert ids(plan) and ids(plan) <= {
        "chin_tuck", "shoulder_blade_squeeze", "seated_ankle_circles", "gentle_seated_rotation",
        "seated_thoracic_extension", "band_seated_row", "dumbbell_overhead_press_seated",
        "dumbbell_biceps_curl", "seated_knee_extension_weight", "lat_pulldown_machine"}
    for standing in ("walking_comfortable", "sit_to_stand", "tandem_stance", "heel_raises"):
        assert excluded(plan)[standing] in ("standing_programme_not_applicable",
                                            "no_floor_exercises", "avoid_for_falls_risk")
    assert excluded(plan)["walking_comfortable"] == "standing_programme_not_applicable"
    # a cane or walker is not a wheelchair: their standing programme stays
    walker = build_plan(make_referral(clinical={"mobility_aid": "walker"}), as_of=as_of)
    assert "walking_comfortable" in ids(walker)


def test_category_c_strength_keeps_the_same_sets_its_limit_is_effort(make_referral, as_of):
    """§4 Strength dose, C column: "same sets and reps; RPE ≤5 in phase 2 and ≤6
    in phase 3" — up to 3 sets at full dose; the Otago set for high falls risk stays at 2."""
    old_vertebral = {"fractures": [{"site": "vertebral", "date": "2019-03-01", "low_trauma": True}]}
    plan = build_plan(make_referral(clinical=old_vertebral), as_of=as_of)
    assert plan["risk"]["bone_category"] == "C"
    strength = [e for e in plan["exercises"] if e["component"] == "strength"]
    assert strength and {e["dose_target"]["sets"] for e in strength if e["dose_target"]["reps"]} == {3}
    assert plan["targets"]["strength"]["effort_max"]["3"] <= 6
    # the stage names the exercises' own full dose (one source of truth)
    assert "Strength: 3 sets of" in plan["phases"][2]["changes"]
    falls = build_plan(make_referral(clinical={**old_vertebral, "falls_last_12_months": 3}),
                       as_of=as_of)
    assert {e["dose_target"]["sets"] for e in falls["exercises"]
            if e["component"] == "strength" and e["dose_target"]["reps"]} == {2}


def test_stage_text_makes_the_balance_minutes_reachable(make_referral, as_of):
    """Guidance 4 / 4.1: balance 10 minutes a day at first, 15-20 by stage 3, and
    posture work 5-10 minutes a day. One round of the listed balance exercises
    takes a few minutes, so the stages say to go through them again."""
    plan = build_plan(make_referral(), as_of=as_of)
    first, _, third, _ = (p["changes"] for p in plan["phases"])
    assert "about 10 minutes a day in all" in first
    assert "go through your balance exercises again until the time is up" in first
    assert "15-20 minutes a day in all" in third and "5-10 minutes a day" in third
    assert all("phase" not in p["changes"] for p in plan["phases"])  # the handout says "stage"
