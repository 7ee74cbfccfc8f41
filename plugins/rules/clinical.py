"""The built-in clinical intake rules, registered as a plugin (entry point ``clinical_rules``).

They implement the intake checks of the clinical guidance (§1, "Inputs and
intake validation"); disable them with ``REFFLOW_DISABLED_PLUGINS=clinical_rules``
only if a clinic plugin replaces them.

- I3: a patient under 18 on the day of receipt → ``reject`` ``out_of_scope_age``.
- I4: a fracture dated after the day of receipt → ``reject`` ``invalid_fracture_date``.
- I2: a diagnosis outside osteoporosis / osteopenia / low bone mass / high
  fracture risk → ``needs_review`` ``diagnosis_out_of_scope`` (the guidance
  rejects; a free-text diagnosis can be in scope in words we do not know, so
  a clinician decides).

Messages name the rule and the field, never the patient's data.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from refflow.plugins import hookimpl

MIN_AGE = 18

# ICD-10-CM codes in scope: osteoporosis with (M80) or without (M81) current
# pathological fracture, other disorders of bone density and structure incl.
# osteopenia (M85.8), and history of a healed osteoporosis fracture (Z87.310).
IN_SCOPE_CODE = re.compile(r"^(M80|M81|M85\.8|Z87\.310)")
IN_SCOPE_TEXT = re.compile(
    r"osteopor|osteopen|low bone (mass|density)|bone loss|fragility fracture|"
    r"high fracture risk|bone density",
    re.IGNORECASE,
)


def _referral(referral: Any):
    if isinstance(referral, dict):
        from refflow.intake.schemas import Referral

        return Referral.model_validate(referral)
    return referral


@hookimpl
def refflow_validate_referral(referral, as_of):
    referral = _referral(referral)
    as_of = as_of or dt.date.today()
    problems: list[dict[str, Any]] = []

    if referral.age_on(as_of) < MIN_AGE:
        problems.append({
            "code": "out_of_scope_age",
            "severity": "reject",
            "message": f"the exercise programme is for adults: the patient is under {MIN_AGE}",
            "field": "patient.birth_date",
        })

    for i, fracture in enumerate(referral.clinical.fractures or []):
        if fracture.date and fracture.date > as_of:
            problems.append({
                "code": "invalid_fracture_date",
                "severity": "reject",
                "message": "a fracture is dated after the referral was received",
                "field": f"clinical.fractures[{i}].date",
            })

    diagnosis = referral.diagnosis
    in_scope = any(IN_SCOPE_CODE.match(code) for code in diagnosis.codes) or bool(
        diagnosis.text and IN_SCOPE_TEXT.search(diagnosis.text)
    )
    if not in_scope:
        problems.append({
            "code": "diagnosis_out_of_scope",
            "severity": "needs_review",
            "message": "the diagnosis is not osteoporosis, osteopenia or low bone mass; "
            "a clinician must confirm the referral fits this programme",
            "field": "diagnosis",
        })
    return problems
