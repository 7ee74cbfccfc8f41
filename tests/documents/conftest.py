"""Fixtures for the document tests: referrals, plans (release / review /
do_not_exercise) and a clinic.

Plans come from the real engine (``refflow.planning.engine.build_plan``) when
it is importable; the release plan falls back to ``sample_plan_release.json``
(the engine's output shape) so the renderers can be tested on their own.
The review and do_not_exercise plans are always derived from the fixture
file, so those two cases stay covered whatever the engine decides.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import sys
from pathlib import Path

import pytest

from refflow.documents.clinic import ClinicInfo
from refflow.intake.schemas import Referral

HERE = Path(__file__).parent
EXAMPLE = HERE.parents[1] / "examples" / "referrals" / "design-example.json"
AS_OF = dt.date(2026, 11, 25)

# importlib import mode puts no test folder on sys.path; the helper module has
# a distinctive name so it cannot shadow anything else.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def _engine():
    try:
        from refflow.planning.engine import build_plan
    except ImportError:
        return None
    return build_plan


@pytest.fixture(scope="session")
def clinic() -> ClinicInfo:
    return ClinicInfo(name="Lakeside Physical Therapy", phone="+1 763 555 0100",
                      fax="+1 763 555 0101", timezone="America/Chicago")


@pytest.fixture(scope="session")
def referral() -> Referral:
    return Referral.model_validate(json.loads(EXAMPLE.read_text()))


@pytest.fixture(scope="session")
def minimal_referral() -> Referral:
    """Only the required fields: every optional value is None."""
    return Referral.model_validate({
        "patient": {"given_name": "Mo", "family_name": "Diaz", "birth_date": "1948-07-01",
                    "sex": "male"},
        "diagnosis": {"text": "osteopenia"},
    })


@pytest.fixture(scope="session")
def sample_plan() -> dict:
    return json.loads((HERE / "sample_plan_release.json").read_text())


@pytest.fixture(scope="session")
def release_plan(referral, sample_plan) -> dict:
    build_plan = _engine()
    if build_plan is None or os.environ.get("REFFLOW_TEST_FIXTURE_PLAN"):
        return sample_plan
    return build_plan(referral, as_of=AS_OF)


@pytest.fixture(scope="session")
def review_plan(sample_plan) -> dict:
    plan = copy.deepcopy(sample_plan)
    plan["decision"] = "review"
    plan["flags"].append({"code": "recent_fracture_pain", "severity": "needs_review",
                          "message": "Back pain since a recent fracture: a clinician must review.",
                          "source": "rules.red_flags"})
    return plan


@pytest.fixture(scope="session")
def do_not_exercise_plan(sample_plan) -> dict:
    plan = copy.deepcopy(sample_plan)
    plan.update(decision="do_not_exercise", exercises=[], weekly_schedule=[], phases=[],
                targets={})
    plan["flags"] = [{"code": "possible_new_fracture", "severity": "needs_review",
                      "message": "New back pain after minor trauma: possible new fracture.",
                      "source": "rules.red_flags"}]
    return plan
