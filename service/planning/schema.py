"""JSON Schema (draft 2020-12) of the plan the engine returns (DESIGN.md "Plan JSON")."""

from __future__ import annotations

_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_INT_OR_NULL = {"type": ["integer", "null"], "minimum": 0}
_EFFORT = {
    "type": "object",
    "required": ["1", "2", "3"],
    "properties": {p: {"type": "integer", "minimum": 0, "maximum": 10} for p in ("1", "2", "3")},
    "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 10},
}
_TARGET = {
    "type": "object",
    "required": ["days_per_week", "minutes_per_week", "effort_max"],
    "properties": {
        "days_per_week": {"type": "integer", "minimum": 0, "maximum": 7},
        "minutes_per_week": {"type": "integer", "minimum": 0},
        "effort_max": _EFFORT,
    },
}
_DOSE = {
    "type": "object",
    "required": ["sets", "reps", "hold_seconds", "minutes", "text"],
    "properties": {"sets": _INT_OR_NULL, "reps": _INT_OR_NULL, "hold_seconds": _INT_OR_NULL,
                   "minutes": _INT_OR_NULL, "text": {"type": "string", "minLength": 1}},
}
_EXERCISE = {
    "type": "object",
    "required": ["id", "name", "category", "impact", "spinal_flexion", "spinal_rotation", "loaded",
                 "end_range", "equipment", "dose", "days_per_week", "instructions", "safety_cue",
                 "progression", "regression", "phase_from"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1},
        "category": {"enum": ["mobility", "aerobic", "strength", "balance"]},
        "component": {"enum": ["mobility", "aerobic", "strength", "balance", "spinal_extensor", "impact"]},
        "impact": {"enum": ["none", "low", "moderate", "high"]},
        "spinal_flexion": _BOOL, "spinal_rotation": _BOOL, "loaded": _BOOL, "end_range": _BOOL,
        "equipment": _STR,
        "muscle_groups": {"type": "array", "items": _STR},
        "dose": _DOSE,
        "dose_target": _DOSE,
        "days_per_week": {"type": "integer", "minimum": 1, "maximum": 7},
        "instructions": {"type": "array", "items": _STR, "minItems": 1},
        "safety_cue": _STR, "progression": _STR, "regression": _STR,
        "phase_from": {"type": "integer", "minimum": 1, "maximum": 4},
        "source": _STR,
    },
}
_TEXT = {"type": "string", "minLength": 1}
_VERSION = {
    "type": "object",
    "required": ["version", "author", "at", "reason"],
    "properties": {
        "version": {"type": "integer", "minimum": 1},
        "author": _TEXT,  # "engine" for version 1, else the clinician
        "at": _STR,  # the plan date for version 1, else the time of the change (ISO 8601)
        "reason": _STR,
        "changes": {"type": "array", "items": _STR},
    },
}
_OVERRIDE = {
    "type": "object",
    "required": ["rule", "exercise", "reason", "by", "at"],
    "properties": {
        "rule": _TEXT,
        "exercise": {"type": ["string", "null"]},  # null: a rule about the whole plan
        "reason": _TEXT,
        "by": _TEXT,
        "at": _STR,
        "version": {"type": "integer", "minimum": 2},
        "evidence": _STR,
    },
}
_DAY = {"enum": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]}

PLAN_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://refflow.example/schemas/plan.json",
    "title": "refflow exercise plan",
    "type": "object",
    "required": ["decision", "risk", "exercises", "targets", "phases", "weekly_schedule", "precautions",
                 "stop_and_call_if", "flags", "excluded_exercises", "rules_applied", "evidence",
                 "engine_version", "catalog_version", "as_of", "version", "versions"],
    "properties": {
        "decision": {"enum": ["release", "review", "do_not_exercise"]},
        "risk": {
            "type": "object",
            "required": ["bone_category", "falls_high", "reasons"],
            "properties": {"bone_category": {"enum": ["A", "B", "C"]}, "falls_high": _BOOL,
                           "reasons": {"type": "array", "items": _STR}},
        },
        "exercises": {"type": "array", "items": _EXERCISE},
        "targets": {
            "type": "object",
            "properties": {k: _TARGET for k in ("strength", "aerobic", "balance", "mobility",
                                                "spinal_extensor", "impact")},
            "additionalProperties": _TARGET,
        },
        "phases": {"type": "array", "items": {
            "type": "object", "required": ["phase", "name", "week_from", "week_to", "changes"],
            "properties": {"phase": {"type": "integer", "minimum": 1}, "name": _STR,
                           "week_from": {"type": "integer", "minimum": 1},
                           "week_to": {"type": ["integer", "null"], "minimum": 1}, "changes": _STR}}},
        "weekly_schedule": {"type": "array", "minItems": 7, "maxItems": 7, "items": {
            "type": "object", "required": ["day", "exercises", "rest"],
            "properties": {"day": _DAY, "exercises": {"type": "array", "items": _STR}, "rest": _BOOL}}},
        "precautions": {"type": "array", "items": _STR},
        "stop_and_call_if": {"type": "array", "items": _STR, "minItems": 1},
        "flags": {"type": "array", "items": {
            "type": "object", "required": ["code", "severity", "message", "source"],
            "properties": {"code": {"type": "string", "minLength": 1},
                           "severity": {"enum": ["info", "caution", "needs_review"]},
                           "message": _STR, "source": {"type": "string", "minLength": 1}}}},
        "excluded_exercises": {"type": "array", "items": {
            "type": "object", "required": ["id", "rule"], "properties": {"id": _STR, "rule": _STR}}},
        "rules_applied": {"type": "array", "items": {
            "type": "object", "required": ["rule", "plugin", "effect"],
            "properties": {"rule": _STR, "plugin": {"type": "string", "minLength": 1}, "effect": _STR}}},
        "evidence": {"type": "array", "items": {
            "type": "object", "required": ["rule", "source", "summary"],
            "properties": {"rule": _STR, "source": _STR, "summary": _STR}}},
        "engine_version": _STR,
        "catalog_version": _STR,
        "as_of": {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "version": {"type": "integer", "minimum": 1},
        "versions": {"type": "array", "items": _VERSION, "minItems": 1},
        "overrides": {"type": "array", "items": _OVERRIDE},
        "patient_notes": {"type": "array", "items": _STR},
        "approved": {"type": "object", "required": ["at"],
                     "properties": {"at": _STR, "by": _STR}},
    },
    "allOf": [
        {"if": {"properties": {"decision": {"const": "do_not_exercise"}}},
         "then": {"properties": {"exercises": {"maxItems": 0}}}},
        {"if": {"properties": {"flags": {"contains": {"properties": {"severity": {"const": "needs_review"}}}}}},
         "then": {"properties": {"decision": {"enum": ["review", "do_not_exercise"]}}}},
    ],
}
