"""A clinician's edit of a plan (planning/revisions.py): each change makes the
next version; the engine's hard safety rules are re-checked; a broken rule is
refused with its name and evidence unless overridden with a reason."""

from __future__ import annotations

import datetime as dt

import pytest
from jsonschema import Draft202012Validator

from refflow.planning.engine import build_plan
from refflow.planning.evidence import RULES
from refflow.planning.revisions import InvalidRevision, SafetyRuleBroken, diff_plans, revise
from refflow.planning.schema import PLAN_SCHEMA

AT = dt.datetime(2026, 6, 2, 9, 30, tzinfo=dt.timezone.utc)
PT = "pt@clinic.example"
CHECK = []


@pytest.fixture(autouse=True)
def _invariants(invariants):
    CHECK[:] = [invariants]


def days_ago(as_of, n: int) -> str:
    return (as_of - dt.timedelta(days=n)).isoformat()


@pytest.fixture
def referral(make_referral):
    # held for review: free-text restrictions from the surgeon
    return make_referral(clinical={"contraindications_text": "no hip flexion past 90 degrees"})


@pytest.fixture
def plan(referral, as_of):
    plan = build_plan(referral, as_of=as_of)
    assert plan["decision"] == "review"
    return plan


def ids(plan) -> list[str]:
    return [e["id"] for e in plan["exercises"]]


def edit(referral, plan, as_of, proposed, **kw):
    kw.setdefault("reason", "hip precautions")
    new = revise(referral, plan, proposed, as_of=as_of, author=PT, at=AT, **kw)
    Draft202012Validator(PLAN_SCHEMA).validate(new)
    if not new.get("overrides"):
        CHECK[0](new, referral)
    return new


def test_the_engines_plan_is_version_1(plan, as_of):
    assert plan["version"] == 1
    assert plan["versions"] == [{"version": 1, "author": "engine", "at": as_of.isoformat(),
                                 "reason": "the engine's draft"}]
    assert plan["overrides"] == [] and plan["patient_notes"] == []
    Draft202012Validator(PLAN_SCHEMA).validate(plan)


def test_remove_add_and_dose_change_make_version_2(referral, plan, as_of):
    keep = [{"id": i} for i in ids(plan) if i != "squat_to_chair"]
    row = next(e for e in keep if e["id"] == "band_seated_row")
    row["dose"] = {"sets": 2, "reps": 12}
    keep.append({"id": "calf_stretch_wall", "phase_from": 2})
    new = edit(referral, plan, as_of, {"exercises": keep})
    assert new["version"] == 2
    assert new["versions"][:1] == plan["versions"]
    last = new["versions"][-1]
    assert (last["version"], last["author"], last["at"], last["reason"]) == \
        (2, PT, AT.isoformat(), "hip precautions")
    assert "squat_to_chair" not in ids(new) and "calf_stretch_wall" in ids(new)
    row = next(e for e in new["exercises"] if e["id"] == "band_seated_row")
    assert (row["dose"]["sets"], row["dose"]["reps"]) == (2, 12)
    assert row["dose"]["text"].startswith("2 sets of 12")
    added = next(e for e in new["exercises"] if e["id"] == "calf_stretch_wall")
    assert added["name"] and added["instructions"] and added["phase_from"] == 2
    # the schedule follows the exercises
    scheduled = {i for day in new["weekly_schedule"] for i in day["exercises"]}
    assert "squat_to_chair" not in scheduled and "calf_stretch_wall" in scheduled
    assert new["targets"] == plan["targets"]
    assert new["decision"] == "review"  # still waits for approval
    assert plan["version"] == 1  # the old version is not changed
    d = diff_plans(plan, new)
    assert [e["id"] for e in d["removed"]] == ["squat_to_chair"]
    assert [e["id"] for e in d["added"]] == ["calf_stretch_wall"]
    assert d["changed"][0]["fields"]["dose.sets"] == [1, 2]


def test_content_comes_from_the_catalogue_never_the_client(referral, plan, as_of):
    sent = [dict(e) for e in plan["exercises"]]
    sent[0] = {**sent[0], "name": "Something else", "impact": "none",
               "instructions": ["Do what you like"], "dose": {"sets": 2}}
    new = edit(referral, plan, as_of, {"exercises": sent})
    assert new["exercises"][0]["name"] == plan["exercises"][0]["name"]
    assert new["exercises"][0]["instructions"] == plan["exercises"][0]["instructions"]


def test_note_and_precaution(referral, plan, as_of):
    new = edit(referral, plan, as_of, {
        "patient_notes": ["Keep your hip bent less than a right angle."],
        "precautions": ["No low chairs for 6 weeks."]})
    assert new["patient_notes"] == ["Keep your hip bent less than a right angle."]
    # the engine's precautions stay; the clinician's is added
    assert new["precautions"] == plan["precautions"] + ["No low chairs for 6 weeks."]
    assert new["exercises"] == plan["exercises"]


def test_stage_text(referral, plan, as_of):
    phases = [{"phase": p["phase"], "changes": p["changes"]} for p in plan["phases"]]
    phases[0]["targets"] = phases[0].pop("changes") + " Keep the hip precautions."
    new = edit(referral, plan, as_of, {"phases": phases})
    assert new["phases"][0]["changes"].endswith("Keep the hip precautions.")
    assert new["phases"][0]["name"] == plan["phases"][0]["name"]


def test_days_per_week_for_strength_moves_the_target(referral, plan, as_of):
    sent = [{"id": e["id"], **({"days_per_week": 3} if e["component"] == "strength" else {})}
            for e in plan["exercises"]]
    new = edit(referral, plan, as_of, {"exercises": sent})
    assert new["targets"]["strength"]["days_per_week"] == 3
    assert all(e["days_per_week"] == 3 for e in new["exercises"] if e["component"] == "strength")


def test_breaking_a_hard_rule_is_refused_with_rule_and_evidence(referral, plan, as_of):
    proposed = {"exercises": [{"id": i} for i in ids(plan)] + [{"id": "jump_rope"}]}
    with pytest.raises(SafetyRuleBroken) as caught:
        edit(referral, plan, as_of, proposed)
    (v,) = caught.value.violations
    assert v["rule"] == "no_high_impact" and v["exercise"] == "jump_rope"
    assert v["evidence"] == RULES["no_high_impact"][1]
    assert "no_high_impact" in str(caught.value)


def test_an_override_keeps_the_change_and_records_it(referral, plan, as_of):
    proposed = {"exercises": [{"id": i} for i in ids(plan)] + [{"id": "jump_rope"}]}
    new = edit(referral, plan, as_of, proposed, override="supervised in clinic by the PT")
    assert "jump_rope" in ids(new)
    (o,) = new["overrides"]
    assert {k: o[k] for k in ("rule", "exercise", "reason", "by", "at")} == {
        "rule": "no_high_impact", "exercise": "jump_rope",
        "reason": "supervised in clinic by the PT", "by": PT, "at": AT.isoformat()}
    # a later edit keeps the override (it is not asked again) while the exercise stays ...
    v3 = edit(referral, new, as_of, {"patient_notes": ["Skip only in clinic."]})
    assert v3["overrides"] == new["overrides"] and v3["version"] == 3
    # ... and drops it once the exercise is gone
    v4 = edit(referral, v3, as_of, {"exercises": [{"id": i} for i in ids(plan)]})
    assert v4["overrides"] == []


def test_removing_all_balance_work_breaks_balance_every_plan(referral, plan, as_of):
    sent = [{"id": e["id"]} for e in plan["exercises"] if e["component"] != "balance"]
    with pytest.raises(SafetyRuleBroken) as caught:
        edit(referral, plan, as_of, {"exercises": sent})
    assert [v["rule"] for v in caught.value.violations] == ["balance_every_plan"]


def test_strength_on_four_days_cannot_be_overridden(referral, plan, as_of):
    sent = [{"id": e["id"], **({"days_per_week": 4} if e["component"] == "strength" else {})}
            for e in plan["exercises"]]
    with pytest.raises(SafetyRuleBroken) as caught:
        edit(referral, plan, as_of, {"exercises": sent}, override="I know best")
    assert caught.value.violations[0]["rule"] == "strength_all_major_groups"
    assert not caught.value.overridable


def test_category_c_spine_rule(make_referral, as_of):
    referral = make_referral(clinical={"t_score": -3.1, "fractures": [
        {"site": "vertebral", "date": days_ago(as_of, 200), "low_trauma": True}]})
    plan = build_plan(referral, as_of=as_of)
    with pytest.raises(SafetyRuleBroken) as caught:
        edit(referral, plan, as_of, {"exercises": [{"id": i} for i in ids(plan)]
                                     + [{"id": "heel_drops"}]})
    assert {v["rule"] for v in caught.value.violations} <= {
        "impact_above_limit", "avoid_for_category", "no_high_impact"}


def test_a_do_not_exercise_plan_keeps_zero_exercises(make_referral, as_of):
    referral = make_referral(clinical={"blood_pressure": {"systolic": 190, "diastolic": 100}})
    plan = build_plan(referral, as_of=as_of)
    assert plan["decision"] == "do_not_exercise"
    with pytest.raises(SafetyRuleBroken) as caught:
        edit(referral, plan, as_of, {"exercises": [{"id": "wall_push_up"}]}, override="fine")
    assert caught.value.violations[0]["rule"] == "blood_pressure_urgent"
    assert not caught.value.overridable
    new = edit(referral, plan, as_of, {"patient_notes": ["Call us after your doctor visit."]})
    assert new["decision"] == "do_not_exercise" and new["exercises"] == []


@pytest.mark.parametrize("proposed, field", [
    ({"exercises": [{"id": "no_such_exercise"}]}, "exercises[0].id"),
    ({"exercises": [{"id": "wall_push_up", "dose": {"sets": -1}}]}, "exercises[0].dose.sets"),
    ({"exercises": [{"id": "wall_push_up", "colour": "red"}]}, "exercises[0].colour"),
    ({"patient_notes": ["two\nlines"]}, "patient_notes[0]"),
    ({"extra": 1}, "plan.extra"),
    ({}, "plan"),
])
def test_invalid_revisions_name_the_field(referral, plan, as_of, proposed, field):
    with pytest.raises(InvalidRevision) as caught:
        edit(referral, plan, as_of, proposed)
    assert isinstance(caught.value, ValueError)
    assert field in caught.value.fields


def test_a_reason_is_required(referral, plan, as_of):
    with pytest.raises(InvalidRevision) as caught:
        edit(referral, plan, as_of, {"patient_notes": ["x"]}, reason="  ")
    assert "reason" in caught.value.fields


def test_plugin_adjusters_are_not_rerun_and_plugin_exercises_can_be_added(referral, as_of):
    extra = [{"id": "clinic_pool_walk", "name": "Pool walking", "category": "aerobic",
              "impact": "none", "spinal_flexion": False, "spinal_rotation": False,
              "loaded": False, "end_range": False, "instructions": ["Walk in the pool."],
              "dose": {"minutes": 20}, "plugin": "clinic"}]
    plan = build_plan(referral, as_of=as_of)
    new = revise(referral, plan, {"exercises": [{"id": i} for i in ids(plan)]
                                  + [{"id": "clinic_pool_walk"}]},
                 as_of=as_of, author=PT, at=AT, reason="pool access", extra_exercises=extra)
    assert new["exercises"][-1]["name"] == "Pool walking"
    assert new["rules_applied"] == plan["rules_applied"]
