"""Referral bodies the pipeline tests submit."""

from __future__ import annotations

import copy


def routine(**overrides) -> dict:
    """An osteopenia referral the engine releases without review."""
    body = {
        "external_id": "EHR-ROUTINE",
        "patient": {"given_name": "Mary", "family_name": "Stone", "birth_date": "1962-04-11",
                    "sex": "female", "email": "mary.stone@example.org"},
        "referrer": {"name": "Dr. R. Patel", "npi": "1234567893", "fax": "+1 763 555 0198"},
        "diagnosis": {"codes": ["M85.80"], "text": "osteopenia"},
        "clinical": {"t_score": -1.8, "fractures": [], "falls_last_12_months": 0,
                     "mobility_aid": "none", "can_rise_from_floor": True,
                     "pain": {"score": 1}, "conditions": [], "medications": [],
                     "activity_level": "light", "blood_pressure": {"systolic": 124,
                                                                   "diastolic": 78}},
        "goals": ["walk to the store"],
    }
    body = copy.deepcopy(body)
    for key, value in overrides.items():
        body[key] = value
    return body


def flagged() -> dict:
    """A referral the engine holds for a clinician (recent vertebral fracture)."""
    body = routine(external_id="EHR-FLAGGED")
    body["diagnosis"] = {"codes": ["M81.0"], "text": "postmenopausal osteoporosis"}
    body["clinical"]["t_score"] = -3.1
    body["clinical"]["fractures"] = [{"site": "vertebral", "level": "T12",
                                      "date": None, "low_trauma": True}]
    return body
