"""Benchmark: plans per second over a fixed set of varied referrals, beside the floor.

The floor is the cost of merely validating the same referrals (pydantic
``Referral.model_validate`` on the raw dicts). The engine is timed on the
already-validated referrals, as the worker calls it. Prints one JSON object.

    python bench/plan_engine.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import platform
import time

from refflow.intake.schemas import Referral
from refflow.planning.engine import ENGINE_VERSION, build_plan

AS_OF = dt.date(2026, 6, 1)


def _days(n: int) -> str:
    return (AS_OF - dt.timedelta(days=n)).isoformat()


BASE = {
    "external_id": "BENCH",
    "patient": {"given_name": "Bench", "family_name": "Mark", "birth_date": "1951-03-02", "sex": "female",
                "phone": "+1 763 555 0100", "email": "bench@example.org"},
    "referrer": {"name": "Dr. Bench", "npi": "1234567893", "fax": "+1 763 555 0198"},
    "diagnosis": {"codes": ["M81.0"], "text": "postmenopausal osteoporosis"},
    "clinical": {"t_score": -2.7, "fractures": [], "falls_last_12_months": 0, "mobility_aid": "none",
                 "can_rise_from_floor": True, "activity_level": "light", "conditions": [], "medications": []},
}

VARIANTS = [
    {},
    {"diagnosis": {"codes": ["M85.80"], "text": "osteopenia"},
     "clinical": {"t_score": -1.6, "activity_level": "active", "exercise_history": "runs twice a week"}},
    {"clinical": {"fractures": [{"site": "vertebral", "date": _days(30), "low_trauma": True}]}},
    {"patient": {"birth_date": "1933-01-01"},
     "clinical": {"falls_last_12_months": 3, "mobility_aid": "walker", "can_rise_from_floor": False}},
    {"clinical": {"pain": {"score": 8, "site": "back", "since": _days(5)}}},
    {"clinical": {"blood_pressure": {"systolic": 190, "diastolic": 100}}},
    {"patient": {"sex": "male"}, "clinical": {"medications": [
        {"name": "prednisolone", "dose_mg_per_day": 10, "since": _days(300)}, "alendronate"]}},
    {"clinical": {"t_score": None, "conditions": ["hypertension", "I25.10", "type 2 diabetes"],
                  "blood_pressure": {"systolic": 150, "diastolic": 88}}},
    {"clinical": {"fractures": None, "falls_last_12_months": None}},
    {"clinical": {"conditions": ["Parkinson's disease", "something unusual"], "medications": ["warfarin"]}},
    {"diagnosis": {"codes": ["M17.11"], "text": "knee osteoarthritis"}},
    {"clinical": {"fractures": [{"site": "hip", "date": _days(400), "low_trauma": True},
                                {"site": "wrist", "date": _days(900)}], "gym_access": True},
     "goals": ["dance", "tennis"]},
]


def _merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "diagnosis":
            out[k] = _merge(out[k], v)
        elif v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def _rate(fn, items, seconds: float) -> tuple[float, int]:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for item in items:
            fn(item)
        n += len(items)
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start), n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    raw = [_merge(BASE, v) for v in VARIANTS]
    referrals = [Referral.model_validate(r) for r in raw]
    decisions = sorted({build_plan(r, as_of=AS_OF)["decision"] for r in referrals})
    for r in referrals:  # warm caches
        build_plan(r, as_of=AS_OF)
    validate_rate, validate_n = _rate(Referral.model_validate, raw, args.seconds)
    plan_rate, plan_n = _rate(lambda r: build_plan(r, as_of=AS_OF), referrals, args.seconds)
    both_rate, _ = _rate(lambda d: build_plan(Referral.model_validate(d), as_of=AS_OF), raw, args.seconds)
    result = {
        "benchmark": "plan_engine",
        "engine_version": ENGINE_VERSION,
        "python": platform.python_version(),
        "referrals": len(raw),
        "decisions_covered": decisions,
        "plans_per_second": round(plan_rate, 1),
        "validations_per_second": round(validate_rate, 1),
        "validate_and_plan_per_second": round(both_rate, 1),
        "engine_us_per_plan": round(1e6 / plan_rate, 1),
        "validate_us_per_referral": round(1e6 / validate_rate, 1),
        "engine_cost_vs_validation": round(validate_rate / plan_rate, 2),
        "target_plans_per_second": 2000,
        "target_max_cost_ratio": 10,
        "meets_targets": plan_rate >= 2000 and validate_rate / plan_rate <= 10,
        "samples": {"plans": plan_n, "validations": validate_n},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
