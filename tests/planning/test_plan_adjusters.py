"""Plugin seams: extra exercises and plan adjusters cannot break the safety rules."""

from __future__ import annotations

import json

import jsonschema

from refflow.planning.catalog import load_catalog
from refflow.planning.engine import ENGINE_VERSION, build_plan
from refflow.planning.rules import exercise_entry
from refflow.planning.schema import PLAN_SCHEMA


def dump(plan):
    return json.dumps(plan, sort_keys=True)


def test_raising_adjuster_keeps_plan_and_flags_plugin(make_referral, as_of, invariants):
    r = make_referral()
    base = build_plan(r, as_of=as_of)

    def boom(referral, plan):
        plan["exercises"].clear()
        raise RuntimeError("secret patient detail Test Patient")

    plan = build_plan(r, as_of=as_of, adjusters=[("clinic_boom", boom)])
    invariants(plan, r)
    assert plan["exercises"] == base["exercises"]
    errors = [f for f in plan["flags"] if f["code"] == "plugin_failed"]
    assert errors and errors[0]["severity"] == "needs_review" and errors[0]["source"] == "clinic_boom"
    assert "RuntimeError" in errors[0]["message"] and "clinic_boom" in errors[0]["message"]
    assert "secret" not in dump(plan) and "Test Patient" not in dump(plan)
    assert plan["decision"] == "review"
    assert base["decision"] == "release"


def test_unsafe_adjuster_high_impact_is_removed_and_flagged(make_referral, as_of, invariants):
    r = make_referral()  # osteoporosis, category B

    def add_jump_rope(referral, plan):
        jump = {"id": "jump_rope", "name": "Jumping rope", "category": "aerobic", "impact": "low",
                "spinal_flexion": False, "spinal_rotation": False, "loaded": False, "end_range": False}
        plan["exercises"].append(jump)
        return plan

    plan = build_plan(r, as_of=as_of, adjusters=[("bouncy", add_jump_rope)])
    invariants(plan, r)
    assert "jump_rope" not in {e["id"] for e in plan["exercises"]}
    assert {"id": "jump_rope", "rule": "no_high_impact"} in plan["excluded_exercises"]
    over = [f for f in plan["flags"] if f["code"] == "plugin_safety_override"]
    assert over and over[0]["source"] == "bouncy" and "bouncy" in over[0]["message"]
    assert plan["decision"] == "review"
    assert any(x["plugin"] == "bouncy" for x in plan["rules_applied"])
    jsonschema.validate(plan, PLAN_SCHEMA)


def test_adjuster_cannot_load_the_spine(make_referral, as_of, invariants):
    r = make_referral()

    def load_it(referral, plan):
        for e in plan["exercises"]:
            if e["id"] == "squat_to_chair":
                e["spinal_flexion"] = True
                e["loaded"] = True
        return plan

    plan = build_plan(r, as_of=as_of, adjusters=[("heavy", load_it)])
    invariants(plan, r)
    assert "squat_to_chair" not in {e["id"] for e in plan["exercises"]}
    assert {"id": "squat_to_chair", "rule": "no_loaded_or_end_range_flexion"} in plan["excluded_exercises"]


def test_safe_adjuster_change_is_recorded_and_scheduled(make_referral, as_of, invariants):
    r = make_referral()

    def add_plank(referral, plan):
        plan["exercises"].append({"id": "incline_plank", "name": "Incline plank", "category": "strength",
                                  "impact": "none", "spinal_flexion": False, "spinal_rotation": False,
                                  "loaded": False, "end_range": False})
        plan["precautions"].append("Clinic rule: bring water.")
        return plan

    plan = build_plan(r, as_of=as_of, adjusters=[("clinic_core", add_plank)])
    invariants(plan, r)
    plank = next(e for e in plan["exercises"] if e["id"] == "incline_plank")
    assert plank["instructions"] and plank["dose"]["text"]
    assert sum("incline_plank" in d["exercises"] for d in plan["weekly_schedule"]) == plank["days_per_week"]
    entries = [x for x in plan["rules_applied"] if x["plugin"] == "clinic_core"]
    assert entries and "incline_plank" in entries[0]["effect"]
    assert "Clinic rule: bring water." in plan["precautions"]
    assert plan["decision"] == "release"
    jsonschema.validate(plan, PLAN_SCHEMA)


def test_adjuster_cannot_release_or_drop_flags_or_raise_effort(make_referral, as_of, invariants):
    r = make_referral(clinical={"conditions": ["I25.10"]})

    def sneaky(referral, plan):
        plan["decision"] = "release"
        plan["flags"] = []
        plan["risk"]["bone_category"] = "A"
        plan["targets"]["aerobic"]["effort_max"]["3"] = 9
        plan["rules_applied"].append({"rule": "x", "plugin": "refflow", "effect": "pretend"})
        return plan

    plan = build_plan(r, as_of=as_of, adjusters=[("sneaky", sneaky)])
    invariants(plan, r)
    assert plan["decision"] == "review"
    assert "cardiovascular_disease" in {f["code"] for f in plan["flags"]}
    assert plan["risk"]["bone_category"] == "B"
    assert plan["targets"]["aerobic"]["effort_max"]["3"] <= 6
    assert {"rule": "x", "plugin": "sneaky", "effect": "pretend"} in plan["rules_applied"]


def test_adjuster_cannot_add_exercises_to_do_not_exercise_plan(make_referral, as_of, invariants):
    r = make_referral(clinical={"blood_pressure": {"systolic": 200, "diastolic": 100}})
    walk = exercise_entry  # noqa: F841 (documenting the helper used by plugins)

    def add(referral, plan):
        plan["exercises"].append({"id": "brisk_walking", "name": "Walk", "category": "aerobic", "impact": "low",
                                  "spinal_flexion": False, "spinal_rotation": False, "loaded": False,
                                  "end_range": False})
        return plan

    plan = build_plan(r, as_of=as_of, adjusters=[("walker", add)])
    invariants(plan, r)
    assert plan["decision"] == "do_not_exercise" and plan["exercises"] == []
    assert any(f["code"] == "plugin_safety_override" and f["source"] == "walker" for f in plan["flags"])


def test_adjuster_returning_none_or_garbage(make_referral, as_of):
    r = make_referral()
    base = build_plan(r, as_of=as_of)
    same = build_plan(r, as_of=as_of, adjusters=[("noop", lambda ref, plan: None)])
    assert dump(same) == dump(base)
    bad = build_plan(r, as_of=as_of, adjusters=[("garbage", lambda ref, plan: ["not", "a", "plan"])])
    assert any(f["code"] == "plugin_failed" and f["source"] == "garbage" for f in bad["flags"])
    assert bad["exercises"] == base["exercises"]


def test_adjusters_get_a_copy(make_referral, as_of):
    r = make_referral()
    seen = {}

    def keep(referral, plan):
        seen["plan"] = plan

    plan = build_plan(r, as_of=as_of, adjusters=[("peek", keep)])
    seen["plan"]["exercises"].clear()
    assert plan["exercises"]


def test_extra_exercises_from_plugins(make_referral, as_of, invariants):
    r = make_referral()
    safe = {"id": "clinic_wall_sit", "name": "Short wall sit", "category": "strength", "impact": "none",
            "spinal_flexion": False, "spinal_rotation": False, "loaded": False, "end_range": False,
            "muscle_groups": ["legs"], "instructions": ["Lean on a wall and bend your knees a little."],
            "dose": {"sets": 1, "reps": 5, "hold_seconds": 10}, "plugin": "clinic_pack"}
    unsafe = {"id": "clinic_burpee", "name": "Burpees", "category": "aerobic", "impact": "high",
              "spinal_flexion": True, "spinal_rotation": False, "loaded": False, "end_range": True,
              "plugin": "clinic_pack"}
    broken = {"id": "half", "name": "Incomplete", "plugin": "clinic_pack"}
    plan = build_plan(r, as_of=as_of, extra_exercises=[safe, unsafe, broken])
    invariants(plan, r)
    ids = {e["id"] for e in plan["exercises"]}
    assert "clinic_wall_sit" in ids and "clinic_burpee" not in ids
    assert {"id": "clinic_burpee", "rule": "no_high_impact"} in plan["excluded_exercises"]
    assert any(f["code"] == "invalid_plugin_exercise" for f in plan["flags"])
    assert any(x["plugin"] == "clinic_pack" for x in plan["rules_applied"])
    jsonschema.validate(plan, PLAN_SCHEMA)


def test_versions_and_catalogue(make_referral, as_of):
    plan = build_plan(make_referral(), as_of=as_of)
    assert plan["engine_version"] == ENGINE_VERSION
    cat = load_catalog()
    assert plan["catalog_version"] == cat.version
    assert plan["as_of"] == as_of.isoformat()
    home = [e for e in cat.exercises if "all" not in e.avoid_for]
    assert len(cat.exercises) >= 40 and len(home) >= 40
    for e in cat.exercises:
        assert e.instructions and e.safety_cue and e.progression and e.regression and e.equipment
    avoid = {e.id for e in cat.exercises if "all" in e.avoid_for}
    assert {"sit_up_crunch", "toe_touch_standing", "jump_rope"} <= avoid


def test_adjust_plan_hook_gets_as_of_through_plan_for(make_referral, as_of, invariants):
    """``refflow_adjust_plan(referral, plan, as_of)`` through the plugin manager:
    the plan's date reaches the rule, so no plugin needs ``date.today()``; an
    implementation may take any subset of the arguments."""
    import copy

    import pluggy

    from refflow.plugins import hookimpl, hookspecs
    from refflow.plugins.manager import plan_for

    seen = []

    class InClinicFirstVisit:  # "patients aged 85+ start with one session in the clinic"
        @hookimpl
        def refflow_adjust_plan(self, referral, plan, as_of):
            seen.append(as_of)
            if referral.age_on(as_of) < 85:
                return None
            plan = copy.deepcopy(plan)
            plan["flags"].append({"code": "in_clinic_first_visit", "severity": "caution",
                                  "message": "Book the first session in the clinic."})
            return plan

    class PlanOnly:
        @hookimpl
        def refflow_adjust_plan(self, plan):
            seen.append("plan only")

    pm = pluggy.PluginManager("refflow")
    pm.add_hookspecs(hookspecs)
    pm.register(PlanOnly(), name="plan_only")
    pm.register(InClinicFirstVisit(), name="clinic_85")
    old = make_referral(patient={"birth_date": as_of.replace(year=as_of.year - 86).isoformat()})
    plan = plan_for(old, as_of=as_of, pm=pm)
    invariants(plan, old)
    assert seen == [as_of, "plan only"]  # LIFO: the plugin registered last runs first
    (flag,) = [f for f in plan["flags"] if f["code"] == "in_clinic_first_visit"]
    assert flag["source"] == "clinic_85" and flag["severity"] == "caution"
    assert any(x["plugin"] == "clinic_85" for x in plan["rules_applied"])
    young = make_referral(patient={"birth_date": as_of.replace(year=as_of.year - 70).isoformat()})
    assert not any(f["code"] == "in_clinic_first_visit"
                   for f in plan_for(young, as_of=as_of, pm=pm)["flags"])
