"""Property tests: generated referrals never crash the engine and every plan keeps the safety invariants."""

from __future__ import annotations

import datetime as dt
import json

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refflow.intake.schemas import Referral
from refflow.planning.engine import build_plan
from refflow.planning.schema import PLAN_SCHEMA

AS_OF = dt.date(2026, 6, 1)
VALIDATOR = jsonschema.Draft202012Validator(PLAN_SCHEMA)

DX = [(["M81.0"], "postmenopausal osteoporosis"), (["M85.80"], "osteopenia"), ([], "low bone mass"),
      (["M80.08XA"], None), ([], "high fracture risk"), (["M17.11"], "knee osteoarthritis"),
      ([], "osteoporosis"), (["M81.0", "I10"], None)]
CONDITIONS = ["hypertension", "I25.10", "afib", "Parkinson's disease", "dementia", "rheumatoid arthritis",
              "severe osteoarthritis", "type 2 diabetes", "E16.2", "hip replacement", "C50.9", "kyphosis",
              "unstable angina", "fever", "cauda equina", "vertigo", "COPD", "hyperlipidemia",
              "unknown thing", "fear of falling", "premenopausal", "I48.91", "G20", "pregnant"]
MEDS = ["alendronate", "prednisone", "prednisolone 5 mg", "warfarin", "metoprolol", "insulin",
        "zolpidem", "mystery pill", "denosumab", "methotrexate"]


def _date_between(lo: dt.date, hi: dt.date):
    return st.integers(0, max((hi - lo).days, 0)).map(lambda n: (lo + dt.timedelta(days=n)).isoformat())


@st.composite
def referrals(draw):
    birth = draw(st.dates(dt.date(1920, 1, 1), dt.date(2010, 1, 1)))
    codes, text = draw(st.sampled_from(DX))
    fractures = draw(st.one_of(st.none(), st.lists(st.fixed_dictionaries(
        {"site": st.sampled_from(["vertebral", "hip", "wrist", "humerus", "pelvis", "rib", "ankle", "other"])},
        optional={"date": _date_between(birth, AS_OF + dt.timedelta(days=10)),
                  "low_trauma": st.booleans()}), max_size=3)))
    clinical = draw(st.fixed_dictionaries({}, optional={
        "t_score": st.floats(-5, 1, allow_nan=False).map(lambda x: round(x, 1)),
        "frax": st.fixed_dictionaries({}, optional={"major_osteoporotic": st.floats(0, 60),
                                                     "hip": st.floats(0, 15)}),
        "falls_last_12_months": st.integers(0, 6),
        "injurious_fall": st.booleans(),
        "fear_of_falling": st.booleans(),
        "mobility_aid": st.sampled_from(["none", "cane", "walker", "rollator", "wheelchair"]),
        "can_rise_from_floor": st.booleans(),
        "pain": st.fixed_dictionaries({"score": st.integers(0, 10)}, optional={
            "site": st.sampled_from(["back", "knee", "neck", "hip", "lower back"]),
            "since": _date_between(AS_OF - dt.timedelta(days=400), AS_OF),
            "after_minor_trauma": st.booleans()}),
        "blood_pressure": st.integers(90, 230).flatmap(
            lambda s: st.fixed_dictionaries({"systolic": st.just(s), "diastolic": st.integers(40, min(s - 1, 130))})),
        "conditions": st.lists(st.sampled_from(CONDITIONS), max_size=4),
        "medications": st.lists(st.one_of(st.sampled_from(MEDS), st.fixed_dictionaries(
            {"name": st.sampled_from(["prednisone", "dexamethasone", "hydrocortisone"])},
            optional={"dose_mg_per_day": st.floats(0, 60), "since": _date_between(
                AS_OF - dt.timedelta(days=900), AS_OF)})), max_size=3),
        "activity_level": st.sampled_from(["sedentary", "light", "active"]),
        "exercise_history": st.sampled_from(["none", "runs daily", "walks", "swims"]),
        "gym_access": st.booleans(),
        "contraindications_text": st.sampled_from(["", "no lifting > 10 lb"]),
    }))
    if fractures is not None:
        clinical["fractures"] = fractures
    data = {
        "patient": {"given_name": "Gen", "family_name": "Erated", "birth_date": birth.isoformat(),
                    "sex": draw(st.sampled_from(["female", "male", "other", "unknown"]))},
        "diagnosis": {"codes": codes, **({"text": text} if text else {})},
        "clinical": clinical,
        "goals": draw(st.lists(st.sampled_from(["walk to the store", "tennis", "jogging", "dance",
                                                "heavy lifting", "garden", "swim"]), max_size=2)),
    }
    return Referral.model_validate(data)


SETTINGS = settings(max_examples=250, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(referrals())
def test_engine_never_crashes_and_invariants_hold(invariants, programme_size, referral):
    plan = build_plan(referral, as_of=AS_OF)
    invariants(plan, referral)
    programme_size(plan)


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(referrals())
def test_plans_validate_against_schema_and_are_deterministic(referral):
    plan = build_plan(referral, as_of=AS_OF)
    VALIDATOR.validate(plan)
    again = build_plan(referral, as_of=AS_OF)
    assert json.dumps(plan, sort_keys=True) == json.dumps(again, sort_keys=True)
    json.dumps(plan, allow_nan=False)  # JSON-serialisable
