"""The plan says one thing once: the walking target is the same in the
exercise, its "when easy" line, the stages and the weekly target; the
emergency line for chest pain is in the stop list; a plan that says "do not
exercise" does not repeat that list as a precaution."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from refflow.intake.schemas import Referral
from refflow.planning.engine import build_plan

AS_OF = dt.date(2026, 12, 1)


def referral(**clinical) -> Referral:
    return Referral.model_validate({
        "patient": {"given_name": "Edna", "family_name": "Price", "birth_date": "1948-05-05",
                    "sex": "female"},
        "diagnosis": {"codes": ["M81.0"], "text": "osteoporosis"},
        "clinical": {"t_score": -2.7, "fractures": [], "falls_last_12_months": 0,
                     "mobility_aid": "none", "can_rise_from_floor": True, "conditions": [],
                     "medications": [], "activity_level": "light", **clinical}})


@pytest.mark.parametrize("clinical", [
    pytest.param({}, id="no_falls"),
    pytest.param({"falls_last_12_months": 2, "mobility_aid": "cane"}, id="high_falls_risk"),
])
def test_the_walking_target_is_the_same_everywhere(clinical) -> None:
    plan = build_plan(referral(**clinical), as_of=AS_OF)
    walk = next(e for e in plan["exercises"] if e["component"] == "aerobic")
    full = walk["dose_target"]["minutes"]
    aerobic = plan["targets"]["aerobic"]
    assert aerobic["minutes_per_week"] == full * aerobic["days_per_week"]
    ceilings = {int(n) for n in re.findall(r"up to (\d+) minutes", walk["progression"])}
    assert ceilings <= {full}, walk["progression"]
    stage3 = plan["phases"][2]["changes"]
    assert f"Walking: {full} minutes" in stage3


def test_chest_pain_that_rest_does_not_stop_means_911() -> None:
    plan = build_plan(referral(), as_of=AS_OF)
    assert any("chest pain" in s and "911" in s for s in plan["stop_and_call_if"])


def test_a_do_not_exercise_plan_gives_the_stop_list_once() -> None:
    plan = build_plan(referral(conditions=["unstable angina"]), as_of=AS_OF)
    assert plan["decision"] == "do_not_exercise"
    assert plan["precautions"] == ["Do not start an exercise program until your doctor has seen you."]
    assert any("chest pain" in s for s in plan["stop_and_call_if"])
