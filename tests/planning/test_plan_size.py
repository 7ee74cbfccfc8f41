"""Programme size (guidance §4): concise, complete, deterministic.

About 8-12 exercises a session; 6-8 strength exercises (compound first)
covering legs, hips, back, chest, shoulders and arms; balance, spinal
extensor and mobility work every day; more balance with high falls risk.
The property tests run ``check_programme_size`` on every generated plan.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from refflow.intake.schemas import Referral
from refflow.planning.catalog import load_catalog
from refflow.planning.engine import build_plan
from refflow.planning.rules import (
    STRENGTH_MAX,
    STRENGTH_MIN,
    choose_balance,
    choose_strength,
    component_of,
)

AS_OF = dt.date(2026, 6, 1)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "referrals" / "design-example.json"


def days_ago(n: int) -> str:
    return (AS_OF - dt.timedelta(days=n)).isoformat()


def birth_for_age(age: int) -> str:
    return AS_OF.replace(year=AS_OF.year - age, day=1).isoformat()


VIGNETTES = {
    "clean_osteoporosis_B": {},
    "vertebral_fracture_C": {"clinical": {"fractures": [
        {"site": "vertebral", "date": days_ago(28), "low_trauma": True}]}},
    "age_92_walker_F": {"patient": {"birth_date": birth_for_age(92)},
                        "clinical": {"falls_last_12_months": 3, "mobility_aid": "walker",
                                     "can_rise_from_floor": False}},
    "runner_A": {"patient": {"birth_date": birth_for_age(55)},
                 "diagnosis": {"codes": ["M85.80"], "text": "osteopenia"},
                 "clinical": {"t_score": -1.8, "activity_level": "active",
                              "exercise_history": "runs 3 times a week", "gym_access": True}},
    "osteopenia_A": {"diagnosis": {"codes": ["M85.80"]}, "clinical": {"t_score": -1.5}},
    "unknown_falls_F": {"clinical": {"falls_last_12_months": ...}},
    "cannot_rise_C": {"clinical": {"fractures": None, "can_rise_from_floor": False}},
}


def _plan(make_referral, name):
    if name == "design_example":
        return build_plan(Referral.model_validate(json.loads(EXAMPLE.read_text())), as_of=AS_OF)
    return build_plan(make_referral(**VIGNETTES[name]), as_of=AS_OF)


@pytest.mark.parametrize("name", [*VIGNETTES, "design_example"])
def test_vignette_programmes_are_concise_and_complete(make_referral, invariants, programme_size, name):
    plan = _plan(make_referral, name)
    invariants(plan)
    programme_size(plan)


def test_design_example_counts(make_referral):
    """DESIGN.md example (category C, no falls overlay): 12 exercises, at most 12 on any day."""
    plan = _plan(make_referral, "design_example")
    comps = [e["component"] for e in plan["exercises"]]
    assert len(comps) == 12
    assert {c: comps.count(c) for c in set(comps)} == {
        "strength": 6, "balance": 3, "aerobic": 1, "spinal_extensor": 1, "mobility": 1}
    assert [len(d["exercises"]) for d in plan["weekly_schedule"]] == [12, 6, 6, 11, 6, 6, 5]
    effect = next(r["effect"] for r in plan["rules_applied"] if r["rule"] == "concise_programme")
    assert effect.startswith("12 distinct exercises (strength 6, balance 3, aerobic 1, spinal_extensor 1, "
                             "mobility 1); 5-12 a day, 11-12 on strength days")


def test_strength_is_compound_first(make_referral):
    """Non-F: the first three strength exercises alone cover every major group."""
    plan = _plan(make_referral, "clean_osteoporosis_B")
    strength = [e for e in plan["exercises"] if e["component"] == "strength"]
    assert [e["id"] for e in strength[:3]] == ["squat_to_chair", "band_seated_row", "wall_push_up"]
    assert {g for e in strength[:3] for g in e["muscle_groups"]} == {
        "legs", "hips", "back", "chest", "shoulders", "arms"}
    squats = {"squat_to_chair", "sit_to_stand", "leg_press_machine"}
    assert len(squats & {e["id"] for e in strength}) == 1, "one squat pattern"


def test_falls_risk_gets_otago_legs_and_more_balance(make_referral):
    """F: Otago leg set plus upper body (8), balance on every day and more of it on non-strength days."""
    f_plan = _plan(make_referral, "age_92_walker_F")
    b_plan = _plan(make_referral, "clean_osteoporosis_B")

    def balance_slots(plan):
        return sum(e["days_per_week"] for e in plan["exercises"] if e["component"] == "balance")

    def count(plan, component):
        return sum(e["component"] == component for e in plan["exercises"])

    assert count(f_plan, "strength") == 8
    assert count(f_plan, "balance") > count(b_plan, "balance")
    assert balance_slots(f_plan) > balance_slots(b_plan)
    comp = {e["id"]: e["component"] for e in f_plan["exercises"]}
    for day in f_plan["weekly_schedule"]:
        kinds = [comp[i] for i in day["exercises"]]
        assert not ("strength" in kinds and "aerobic" in kinds), "F: walking on the days without strength"
        if "strength" not in kinds:
            assert kinds.count("balance") == 5, day["day"]


def test_aerobic_days_avoid_strength_days_where_possible(make_referral):
    for name in VIGNETTES:
        plan = _plan(make_referral, name)
        comp = {e["id"]: e["component"] for e in plan["exercises"]}
        kinds = [{comp[i] for i in d["exercises"]} for d in plan["weekly_schedule"]]
        s = sum("strength" in k for k in kinds)
        a = sum("aerobic" in k for k in kinds)
        both = sum({"strength", "aerobic"} <= k for k in kinds)
        assert both == max(0, s + a - 6), name  # Sunday rests; overlap only when Mon-Sat is full


def test_selection_is_a_pure_function_of_the_safety_profile(make_referral):
    """Facts that change no exclusion (age 70 vs 75, a gardening goal, sex) change no exercise."""
    a = build_plan(make_referral(), as_of=AS_OF)
    b = build_plan(make_referral(patient={"birth_date": birth_for_age(75), "sex": "male"}, goals=["garden"]),
                   as_of=AS_OF)
    assert [e["id"] for e in a["exercises"]] == [e["id"] for e in b["exercises"]]
    assert a["weekly_schedule"] == b["weekly_schedule"]


@pytest.mark.parametrize("falls_high", [False, True])
def test_strength_selection_survives_any_missing_exercise(falls_high):
    """Removing any one strength exercise still gives 6-8 exercises covering every group (ties stable)."""
    catalog = load_catalog()
    allowed = {e.id: e for e in catalog.exercises
               if "all" not in e.avoid_for and not e.supervision_required and e.impact != "high"}
    base = [e.id for e in choose_strength(allowed, falls_high)]
    assert base == [e.id for e in choose_strength(dict(allowed), falls_high)]
    for ex_id, e in allowed.items():
        if component_of(e) != "strength":
            continue
        pool = {k: v for k, v in allowed.items() if k != ex_id}
        chosen = choose_strength(pool, falls_high)
        assert STRENGTH_MIN <= len(chosen) <= STRENGTH_MAX, (ex_id, [c.id for c in chosen])
        assert {g for c in chosen for g in c.muscle_groups} >= {"legs", "hips", "back", "chest", "shoulders",
                                                               "arms"}, ex_id
        if ex_id not in base:
            assert [c.id for c in chosen] == base, ex_id


@pytest.mark.parametrize("falls_high", [False, True])
def test_balance_selection_starts_now_and_progresses(falls_high):
    catalog = load_catalog()
    allowed = {e.id: e for e in catalog.exercises if "all" not in e.avoid_for
               and not (falls_high and "F" in e.avoid_for)}
    daily, extra = choose_balance(allowed, falls_high)
    assert len(daily) == (2 if falls_high else 3) and len(extra) == (3 if falls_high else 0)
    assert all(e.phase_from == 1 for e in daily) if falls_high else daily[0].phase_from == 1
    assert any(e.subcategory == "dynamic" for e in daily + extra)
    assert "tai_chi" not in {e.id for e in daily + extra}  # phase 4: named in the phase text instead


def test_plugins_may_still_add_exercises(make_referral, invariants):
    """The size rule limits the built-in selection only; a plugin's safe exercises are kept."""
    r = make_referral()
    extras = [{"id": f"clinic_ex_{i}", "name": f"Clinic exercise {i}", "category": "mobility", "impact": "none",
               "spinal_flexion": False, "spinal_rotation": False, "loaded": False, "end_range": False,
               "days_per_week": 7, "plugin": "clinic_pack"} for i in range(3)]
    plan = build_plan(r, as_of=AS_OF, extra_exercises=extras)
    invariants(plan, r)
    ids = {e["id"] for e in plan["exercises"]}
    assert {"clinic_ex_0", "clinic_ex_1", "clinic_ex_2"} <= ids
    effect = next(x["effect"] for x in plan["rules_applied"] if x["rule"] == "concise_programme")
    assert "3 from plugins" in effect

    def add(referral, p):
        p["exercises"].append({"id": "incline_plank", "name": "Incline plank", "category": "strength",
                               "impact": "none", "spinal_flexion": False, "spinal_rotation": False,
                               "loaded": False, "end_range": False})
        return p

    adjusted = build_plan(r, as_of=AS_OF, adjusters=[("clinic_core", add)])
    invariants(adjusted, r)
    assert "incline_plank" in {e["id"] for e in adjusted["exercises"]}
