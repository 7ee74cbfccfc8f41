"""Fixtures for the plan-engine tests: a referral builder and the safety invariants."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from refflow.intake.schemas import Referral

AS_OF = dt.date(2026, 6, 1)

BASE = {
    "patient": {"given_name": "Test", "family_name": "Patient", "birth_date": "1954-05-10",
                "sex": "female"},
    "diagnosis": {"codes": ["M81.0"], "text": "postmenopausal osteoporosis"},
    "clinical": {
        "t_score": -2.7,
        "fractures": [],
        "falls_last_12_months": 0,
        "injurious_fall": False,
        "mobility_aid": "none",
        "can_rise_from_floor": True,
        "activity_level": "light",
        "exercise_history": "walks most days",
        "conditions": [],
        "medications": [],
    },
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "diagnosis":
            out[key] = _merge(out[key], value)
        elif value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def days_ago(n: int) -> str:
    return (AS_OF - dt.timedelta(days=n)).isoformat()


def birth_for_age(age: int) -> str:
    return AS_OF.replace(year=AS_OF.year - age, day=1).isoformat()


@pytest.fixture
def make_referral():
    """make_referral(clinical={...}, diagnosis={...}, patient={...}); a value of ... deletes a key."""

    def make(**over) -> Referral:
        return Referral.model_validate(_merge(BASE, over))

    return make


@pytest.fixture
def as_of():
    return AS_OF


def check_invariants(plan: dict, referral: Referral | None = None) -> None:
    """The safety invariants every plan must satisfy (issue 3)."""
    from refflow.planning.catalog import load_catalog

    cat = load_catalog().by_id
    risk = plan["risk"]
    exercises = plan["exercises"]
    vertebral = False
    if referral is not None:
        vertebral = any(f.site == "vertebral" for f in referral.clinical.fractures or ())
    spine_strict = risk["bone_category"] in ("B", "C") or vertebral
    for e in exercises:
        assert e["impact"] != "high", e["id"]
        if spine_strict:
            assert not ((e["spinal_flexion"] or e["spinal_rotation"]) and (e["loaded"] or e["end_range"])), e["id"]
        if risk["bone_category"] == "C" or vertebral:
            assert not e["spinal_flexion"], e["id"]
            assert e["impact"] in ("none", "low"), e["id"]
        if risk["bone_category"] == "B":
            assert e["impact"] in ("none", "low"), e["id"]
        base = cat.get(e["id"])
        if base is not None:
            assert "all" not in base.avoid_for, e["id"]
            if risk["falls_high"]:
                assert not base.floor_transfer, e["id"]
                assert "brisk_walking_program" not in base.tags, e["id"]
                assert "F" not in base.avoid_for, e["id"]
    sched = plan["weekly_schedule"]
    assert [d["day"] for d in sched] == ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                         "Saturday", "Sunday"]
    comp = {e["id"]: e.get("component", e["category"]) for e in exercises}
    strength_days = [i for i, d in enumerate(sched) if any(comp.get(x) == "strength" for x in d["exercises"])]
    for a, b in zip(strength_days, strength_days[1:] + [strength_days[0] + 7] if strength_days else []):
        assert b - a >= 2, f"strength on consecutive days {strength_days}"
    # a wheelchair user's draft keeps only seated work: its aerobic and balance
    # parts are for the PT to build (guidance 3.2: standing programme not applicable)
    seated_draft = any(f["code"] == "non_ambulatory" for f in plan["flags"])
    if exercises:
        assert 2 <= len(strength_days) <= 3
    if exercises and not seated_draft:
        aerobic_days = [i for i, d in enumerate(sched) if any(comp.get(x) == "aerobic" for x in d["exercises"])]
        assert (2 if risk["falls_high"] else 3) <= len(aerobic_days) <= 5
        assert any(e["category"] == "balance" for e in exercises), "balance in every plan"
    if exercises:
        assert any(d["rest"] for d in sched)
        for e in exercises:
            count = sum(e["id"] in d["exercises"] for d in sched)
            assert count == e["days_per_week"], e["id"]
        for key in ("strength", "aerobic", "balance", "mobility"):
            assert key in plan["targets"]
    if plan["decision"] == "do_not_exercise":
        assert exercises == []
    if any(f["severity"] == "needs_review" for f in plan["flags"]):
        assert plan["decision"] in ("review", "do_not_exercise")
    if plan["decision"] == "release":
        assert not any(f["severity"] == "needs_review" for f in plan["flags"])
        assert exercises
    assert plan["stop_and_call_if"]


COMPONENTS = ("strength", "balance", "aerobic", "spinal_extensor", "mobility")
MAJOR_GROUPS = {"legs", "hips", "back", "chest", "shoulders", "arms"}


def check_programme_size(plan: dict) -> None:
    """Guidance §4 on a built-in plan (no plugin exercises): a concise, complete programme.

    About 8-12 exercises a session (never more than 12 on any day, at least 8
    on a strength day); 6-8 strength exercises covering every major muscle
    group; all five components; balance, posture and mobility every day; and
    no more distinct exercises than the per-component counts allow.
    """
    from refflow.planning.catalog import load_catalog
    from refflow.planning.rules import SESSION_MAX, SESSION_MIN, STRENGTH_MAX, STRENGTH_MIN

    exercises = plan["exercises"]
    if not exercises or any(f["code"] == "non_ambulatory" for f in plan["flags"]):
        return  # none, or a wheelchair user's seated draft for a PT to complete (guidance 3.2)
    cat = load_catalog().by_id
    comp = {e["id"]: e["component"] for e in exercises}
    assert set(COMPONENTS) <= set(comp.values()), sorted(set(comp.values()))
    strength = [e for e in exercises if e["component"] == "strength"]
    assert STRENGTH_MIN <= len(strength) <= STRENGTH_MAX, [e["id"] for e in strength]
    assert MAJOR_GROUPS <= {g for e in strength for g in e["muscle_groups"]}
    falls_high = plan["risk"]["falls_high"]
    # 8 strength + 5 balance + 2 aerobic + extensor + mobility (F); 6 + 3 + 2 + 1 + 1 + impact otherwise
    assert len(exercises) <= (17 if falls_high else 14), len(exercises)
    assert len({e["id"] for e in exercises}) == len(exercises)
    balance = [e for e in exercises if e["component"] == "balance"]
    assert any(e["phase_from"] == 1 and e["days_per_week"] == 7 for e in balance), "balance from day 1, daily"
    assert any(cat[e["id"]].subcategory == "dynamic" for e in balance), "static progressing to dynamic"
    for day in plan["weekly_schedule"]:
        kinds = {comp[i] for i in day["exercises"]}
        assert {"balance", "spinal_extensor", "mobility"} <= kinds, day["day"]
        assert len(day["exercises"]) <= SESSION_MAX, (day["day"], len(day["exercises"]))
        if "strength" in kinds:
            assert len(day["exercises"]) >= SESSION_MIN, (day["day"], len(day["exercises"]))
    assert any(r["rule"] == "concise_programme" for r in plan["rules_applied"])
    assert any(e["rule"] == "concise_programme" for e in plan["evidence"])


@pytest.fixture(scope="session")
def invariants():
    return check_invariants


@pytest.fixture(scope="session")
def programme_size():
    return check_programme_size
