"""The plan engine: ``build_plan(referral, as_of=...)`` → plan dict.

Pure Python (no Flask, Celery or database). The pipeline:

1. derive facts and classify risk (``risk.py``);
2. gates: urgent (do not exercise), review and soft flags (``gates.GATES``);
3. prescription: exclusions, selection, doses (``rules.PRESCRIPTION``),
   targets, phases, schedule, precautions;
4. plugin adjusters, each on a deep copy, each change recorded with the
   plugin's name; an adjuster that raises is discarded and flagged;
5. safety enforcement, last: every exercise is re-checked against the same
   exclusion predicate, effort ceilings and built-in flags are restored, the
   schedule is rebuilt, and the decision is derived from the flags.

Deterministic: no clock reads (``as_of`` is "today"), no set-ordered output.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from refflow.intake.schemas import Referral
from refflow.planning import gates
from refflow.planning import rules as R
from refflow.planning import translations as T
from refflow.planning.catalog import (
    CATEGORIES,
    IMPACT_RANK,
    IMPACTS,
    CatalogError,
    Exercise,
    exercise_from_mapping,
    load_catalog,
    plugin_exercises,
)
from refflow.planning.decision import decide
from refflow.planning.evidence import RULES as EVIDENCE_RULES
from refflow.planning.evidence import evidence_entry
from refflow.planning.revisions import first_version_entry
from refflow.planning.risk import assess_risk, derive_facts
from refflow.planning.schedule import build_schedule, empty_schedule

ENGINE_VERSION = "1.1.0"  # 1.1: a seated-only draft for wheelchair users; category C strength up to 3 sets; urgent_medical

Adjuster = Callable[[Referral, dict], "dict | None"]

_EXERCISE_KEYS = ("id", "name", "category", "impact", "spinal_flexion", "spinal_rotation", "loaded",
                  "end_range", "equipment", "dose", "days_per_week", "instructions", "safety_cue",
                  "progression", "regression", "phase_from")
_LIST_KEYS = ("exercises", "phases", "weekly_schedule", "precautions", "stop_and_call_if", "flags",
              "excluded_exercises", "rules_applied", "evidence")


def build_plan(referral: Referral, *, as_of: dt.date,
               extra_exercises: Sequence[Mapping] = (),
               adjusters: Sequence[tuple[str, Adjuster]] = (),
               locale: str = "en_US", allow_unreviewed_translations: bool = False) -> dict:
    """Build the exercise plan for ``referral`` as of the date ``as_of``.

    ``locale`` is the clinic's (setting ``clinic_locale``): the plan's text
    gives weights in pounds for the US ("about 2 lb") and in kilograms
    elsewhere ("about 1 kg").

    The patient's texts are in their preferred language when refflow has a
    complete translation that is reviewed, or unreviewed and
    ``allow_unreviewed_translations`` (setting
    ``REFFLOW_ALLOW_UNREVIEWED_TRANSLATIONS``); the plan's ``language`` says
    which (``planning/translations.py``).
    """
    if not isinstance(as_of, dt.date) or isinstance(as_of, dt.datetime):
        raise TypeError("as_of must be a datetime.date")
    catalog = load_catalog()
    facts = derive_facts(referral, as_of)
    risk = assess_risk(facts)
    d = R.Draft(facts=facts, risk=risk, catalog=catalog, pounds=R.uses_pounds(locale),
                allow_unreviewed_translations=allow_unreviewed_translations)
    d.extras = _load_extras(extra_exercises, d)
    for rule in gates.GATES:
        rule(d)
    if d.planning:
        for rule in R.PRESCRIPTION:
            rule(d)
        exercises = [R.exercise_entry(e, comp, d, d.days.get(e.id, e.days_per_week)) for e, comp in d.selected]
        targets = R.effort_ceilings(d)
        phases = R.phases(d, targets, exercises)
        schedule = build_schedule(exercises, targets)
        d.applied("weekly_schedule", _schedule_effect(schedule))
        R.concise_programme(d, exercises, schedule)
    else:
        exercises, targets, phases, schedule = [], {}, [], empty_schedule()
        d.applied("safety_enforcement", "no exercises: "
                  + ("urgent medical review first" if d.urgent else "referral held for a clinician"))
    if d.urgent:  # guidance 3.1: no plan, flag urgent_medical, see a doctor / urgent care first
        d.flag("urgent_medical", "needs_review",
               "A red flag needs medical assessment before any exercise: no plan was drafted. "
               "The patient is asked to see their doctor or urgent care first.")
    plan = {
        "decision": "review",  # decided below, once the flags are final
        "risk": risk.as_dict(),
        "exercises": exercises,
        "targets": targets,
        "phases": phases,
        "weekly_schedule": schedule,
        "precautions": R.precautions(d),
        "stop_and_call_if": R.stop_and_call(d),
        "flags": d.flags,
        "excluded_exercises": d.excluded,
        "rules_applied": d.rules_applied,
        "evidence": [],
        "engine_version": ENGINE_VERSION,
        "catalog_version": catalog.version,
        "as_of": as_of.isoformat(),
        # version 1 is the engine's draft; a clinician's edit adds one (planning/revisions.py)
        "version": 1,
        "versions": [first_version_entry(as_of.isoformat())],
        "overrides": [],
        "patient_notes": [],
    }
    if adjusters:
        # Without adjusters the plan is safe by construction (the same exclusion
        # predicate chose every exercise); with them, re-check everything.
        builtin = _Builtin(plan)
        attribution: dict[str, str] = {}
        plan = _run_adjusters(referral, plan, d, adjusters, attribution)
        _enforce_safety(plan, d, builtin, attribution)
    _translate(plan, d, extra_exercises)
    plan["flags"] = d.flags
    plan["rules_applied"] = d.rules_applied
    plan["evidence"] = [evidence_entry(rule) for rule in d.fired if rule in EVIDENCE_RULES]
    plan["decision"] = decide(plan)
    return plan


# --------------------------------------------------------------------------


def _schedule_effect(schedule: list[dict]) -> str:
    rest = [day["day"] for day in schedule if day["rest"]]
    return "7-day schedule; rest from strength/aerobic on " + (", ".join(rest) or "no day")


def _translate(plan: dict, d: R.Draft, extra_exercises: Sequence[Mapping]) -> None:
    """Give each exercise its texts in the handout's language (``translations``)
    and record the language in the plan. An exercise without them (a plugin's
    that carries none) puts the handout back in English, with the
    ``interpreter_needed`` flag."""
    plan["language"], plan["translation_reviewed"] = "en", True
    if d.language == T.SOURCE_LANGUAGE:
        return
    missing = T.translate_plan(plan, d.language, falls_high=d.risk.falls_high,
                               extra_exercises=extra_exercises,
                               local_units=lambda text: R.local_units(text, d.pounds))
    if missing:
        flag = T.interpreter_flag(d.language, missing)
        d.flag(flag["code"], flag["severity"], flag["message"])
        d.applied("language_review", f"no {d.language} text for {len(missing)} exercise(s): review")
        return
    plan["language"], plan["translation_reviewed"] = d.language, d.language_reviewed


def _load_extras(entries: Sequence[Mapping], d: R.Draft) -> tuple[Exercise, ...]:
    exercises, refused = plugin_exercises(entries, d.catalog.by_id)
    for r in refused:
        if r.code == "invalid_plugin_exercise":
            d.flag(r.code, "caution", f"An exercise from plugin {r.source} was ignored: "
                   f"{r.message}.", source=r.source)
        else:
            d.flag(r.code, "caution", f"Plugin {r.source} offered an exercise id that already "
                   "exists; it was ignored.", source=r.source)
    return tuple(exercises)


class _Builtin:
    """What the built-in rules decided, kept to restore anything a plugin must not change."""

    def __init__(self, plan: dict) -> None:
        self.risk = copy.deepcopy(plan["risk"])
        self.targets = copy.deepcopy(plan["targets"])
        self.exercises = copy.deepcopy(plan["exercises"])
        self.precautions = list(plan["precautions"])
        self.stop = list(plan["stop_and_call_if"])
        self.excluded = copy.deepcopy(plan["excluded_exercises"])
        self.phases = copy.deepcopy(plan["phases"])
        self.fixed = {k: copy.deepcopy(plan[k]) for k in ("engine_version", "catalog_version", "as_of",
                                                          "version", "versions", "overrides")}


def _shape_problem(plan: Any) -> str | None:
    if not isinstance(plan, dict):
        return "did not return a plan object"
    for key in _LIST_KEYS:
        if key in plan and not isinstance(plan[key], list):
            return f"'{key}' is not a list"
    for key in ("risk", "targets"):
        if key in plan and not isinstance(plan[key], dict):
            return f"'{key}' is not an object"
    for key in ("exercises", "flags", "excluded_exercises", "rules_applied"):
        if any(not isinstance(x, dict) for x in plan.get(key, ())):
            return f"'{key}' has an entry that is not an object"
    if any(not isinstance(x.get("id"), str) for x in plan.get("exercises", ())):
        return "an exercise has no id"
    return None


def _key(entry: Mapping, fields: Sequence[str]) -> tuple:
    return tuple(str(entry.get(f)) for f in fields)


def _run_adjusters(referral: Referral, plan: dict, d: R.Draft,
                   adjusters: Sequence[tuple[str, Adjuster]], attribution: dict[str, str]) -> dict:
    for name, fn in adjusters:
        name = str(name)[:60]
        before = plan
        try:
            result = fn(referral, copy.deepcopy(plan))
        except Exception as exc:  # noqa: BLE001 (a plugin must never take the engine down)
            d.flag("plugin_failed", "needs_review",
                   f"Plugin {name} raised {type(exc).__name__}; its changes were discarded.", source=name)
            d.applied("plugin_adjustment", f"raised {type(exc).__name__}; changes discarded", plugin=name)
            continue
        if result is None:
            continue
        problem = _shape_problem(result)
        if problem:
            d.flag("plugin_failed", "needs_review",
                   f"Plugin {name} returned an invalid plan ({problem}); its changes were discarded.",
                   source=name)
            d.applied("plugin_adjustment", f"invalid plan ({problem}); changes discarded", plugin=name)
            continue
        changes = []
        old_ex = {e["id"]: e for e in before["exercises"]}
        new_ex = {e["id"]: e for e in result.get("exercises", [])}
        added = [i for i in new_ex if i not in old_ex]
        removed = [i for i in old_ex if i not in new_ex]
        changed = [i for i in new_ex if i in old_ex and new_ex[i] != old_ex[i]]
        for i in added + changed:
            attribution[i] = name
        if added:
            changes.append("added exercises " + ", ".join(added))
        if removed:
            changes.append("removed exercises " + ", ".join(removed))
        if changed:
            changes.append("changed exercises " + ", ".join(changed))
        # flags and rules: plugins may add, never remove or impersonate built-ins
        old_flags = {_key(f, ("code", "severity", "message", "source")) for f in before["flags"]}
        for f in result.get("flags", []):
            if _key(f, ("code", "severity", "message", "source")) not in old_flags:
                severity = f.get("severity") if f.get("severity") in R.SEVERITIES else "needs_review"
                d.flag(str(f.get("code") or "plugin_flag")[:60], severity, str(f.get("message") or "")[:500],
                       source=name)
                changes.append(f"added flag {str(f.get('code'))[:60]}")
        new_flag_keys = {_key(f, ("code", "severity", "message", "source")) for f in result.get("flags", [])}
        if any(k not in new_flag_keys for k in old_flags):
            changes.append("tried to remove flags (restored)")
        old_rules = len(before["rules_applied"])
        for entry in result.get("rules_applied", [])[old_rules:]:
            d.applied(str(entry.get("rule") or "plugin_rule")[:80], str(entry.get("effect") or "")[:500],
                      plugin=name)
        for key in sorted(set(result) | set(before)):
            if key in ("exercises", "flags", "rules_applied", "evidence", "decision"):
                continue
            if result.get(key) != before.get(key):
                changes.append(f"changed {key}")
        if result.get("decision") != before.get("decision"):
            changes.append("tried to set the decision (derived from flags instead)")
        if changes:
            d.applied("plugin_adjustment", "; ".join(changes), plugin=name)
        result["flags"] = list(d.flags)
        result["rules_applied"] = list(d.rules_applied)
        plan = result
    return plan


def _effective(entry: dict, d: R.Draft) -> Exercise | None:
    """The exercise as the safety rules must judge it: the worse of the plan entry and its catalogue entry."""
    base = d.catalog.by_id.get(entry["id"]) or next((e for e in d.extras if e.id == entry["id"]), None)
    try:
        given = exercise_from_mapping({**(_entry_as_catalog(base) if base else {}), **entry},
                                      source=base.source if base else "plugin")
    except CatalogError:
        return None
    if base is None:
        return given
    return Exercise(**{
        **{f: getattr(base, f) for f in base.__dataclass_fields__},
        "impact": IMPACTS[max(IMPACT_RANK[base.impact], IMPACT_RANK[given.impact])],
        "spinal_flexion": base.spinal_flexion or given.spinal_flexion,
        "spinal_rotation": base.spinal_rotation or given.spinal_rotation,
        "loaded": base.loaded or given.loaded,
        "end_range": base.end_range or given.end_range,
        "category": given.category,
    })


def _entry_as_catalog(e: Exercise) -> dict:
    return {f: getattr(e, f) for f in ("id", "name", "category", "subcategory", "impact",
                                       "spinal_flexion", "spinal_rotation", "loaded", "end_range",
                                       "rapid_or_repetitive_spine", "floor_transfer",
                                       "support_possible", "supervision_required", "equipment")}


def _complete(entry: dict, eff: Exercise, d: R.Draft) -> dict:
    """Fill fields a plugin left out, from a fresh built-in rendering of the exercise."""
    fresh = R.exercise_entry(eff, entry.get("component") or R.component_of(eff), d, eff.days_per_week)
    out = dict(fresh)
    for key, value in entry.items():
        if key in fresh and type(value) is not type(fresh[key]) and fresh[key] is not None:
            continue  # wrong type from the plugin: keep the built-in value
        out[key] = value
    dose = out.get("dose")
    if not isinstance(dose, dict) or not isinstance(dose.get("text"), str):
        out["dose"] = fresh["dose"]
    if out.get("component") not in ("strength", "aerobic", "balance", "mobility", "spinal_extensor", "impact"):
        out["component"] = fresh["component"]
    if not isinstance(out.get("phase_from"), int) or not 1 <= out["phase_from"] <= 4:
        out["phase_from"] = fresh["phase_from"]
    if not all(isinstance(s, str) for s in out.get("instructions", ())):
        out["instructions"] = fresh["instructions"]
    return out


def _enforce_safety(plan: dict, d: R.Draft, builtin: _Builtin, attribution: dict[str, str]) -> None:
    """Safety rules run last; no plugin can override them."""
    for key, value in builtin.fixed.items():
        plan[key] = value
    if plan.get("risk") != builtin.risk:
        plan["risk"] = copy.deepcopy(builtin.risk)
        d.applied("safety_enforcement", "risk classification restored (plugins cannot change it)")
    if not d.planning:
        if plan.get("exercises"):
            names = sorted({attribution.get(e.get("id"), "a plugin") for e in plan["exercises"]})
            d.flag("plugin_safety_override", "needs_review",
                   f"Plugin(s) {', '.join(names)} added exercises to a plan that must have none; removed.",
                   source=names[0])
            d.applied("safety_enforcement", "exercises removed: this plan must have none")
        plan.update(exercises=[], targets={}, phases=[], weekly_schedule=empty_schedule(),
                    excluded_exercises=builtin.excluded, precautions=builtin.precautions,
                    stop_and_call_if=builtin.stop)
        return
    profile = d.profile
    kept: list[dict] = []
    seen: set[str] = set()
    excluded = list(builtin.excluded)
    excluded_keys = {_key(x, ("id", "rule")) for x in excluded}
    for entry in plan.get("exercises", []):
        ex_id = entry["id"][:80]
        if ex_id in seen:
            continue
        plugin = attribution.get(ex_id)
        eff = _effective(entry, d)
        rule = "invalid_exercise" if eff is None else R.exclusion_rule(eff, profile)
        if rule is None and eff.category not in CATEGORIES:
            rule = "invalid_exercise"
        if rule is not None:
            if _key({"id": ex_id, "rule": rule}, ("id", "rule")) not in excluded_keys:
                excluded.append({"id": ex_id, "rule": rule})
                excluded_keys.add(_key({"id": ex_id, "rule": rule}, ("id", "rule")))
            who = plugin or "refflow"
            d.flag("plugin_safety_override", "needs_review",
                   f"Plugin {who} added or changed exercise {ex_id}, which breaks safety rule {rule}; "
                   "it was removed.", source=who)
            d.applied("safety_enforcement", f"removed {ex_id} ({rule}) added by {who}")
            d.applied(rule, f"excluded {ex_id} after plugin adjustment")
            continue
        seen.add(ex_id)
        kept.append(_complete(entry, eff, d) if plugin else entry)
    # balance work in every plan
    if not any((e.get("component") or e.get("category")) == "balance" for e in kept):
        restored = [copy.deepcopy(e) for e in builtin.exercises if e["component"] == "balance"]
        kept.extend(restored)
        if restored:
            d.flag("plugin_safety_override", "needs_review",
                   "A plugin removed all balance exercises; they were restored.",
                   source=next(iter(sorted(set(attribution.values()))), "refflow"))
            d.applied("safety_enforcement", "balance exercises restored")
    # effort ceilings and days: a plugin may lower, never raise
    targets = plan.get("targets") if isinstance(plan.get("targets"), dict) else {}
    fixed_targets = {}
    for comp, base in builtin.targets.items():
        given = targets.get(comp)
        t = copy.deepcopy(base)
        if isinstance(given, dict):
            effort = given.get("effort_max") if isinstance(given.get("effort_max"), dict) else {}
            for phase, ceiling in base["effort_max"].items():
                v = effort.get(phase)
                if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= ceiling:
                    t["effort_max"][phase] = v
            for k in ("days_per_week", "minutes_per_week"):
                v = given.get(k)
                if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                    t[k] = v
        fixed_targets[comp] = t
    if "strength" in fixed_targets:
        fixed_targets["strength"]["days_per_week"] = min(3, max(2, fixed_targets["strength"]["days_per_week"]))
    if "aerobic" in fixed_targets:
        low = 2 if d.risk.falls_high else 3
        fixed_targets["aerobic"]["days_per_week"] = min(5, max(low, fixed_targets["aerobic"]["days_per_week"]))
    if "balance" in fixed_targets:
        fixed_targets["balance"]["days_per_week"] = 7
    if fixed_targets != targets and targets != builtin.targets:
        d.applied("safety_enforcement", "targets kept within the built-in limits")
    plan["targets"] = fixed_targets
    plan["exercises"] = kept
    plan["excluded_exercises"] = excluded
    if not isinstance(plan.get("phases"), list) or not all(isinstance(p, dict) for p in plan["phases"]):
        plan["phases"] = builtin.phases
    plan["precautions"] = builtin.precautions + [
        str(p)[:500] for p in plan.get("precautions", []) if p not in builtin.precautions]
    plan["stop_and_call_if"] = builtin.stop + [
        str(p)[:500] for p in plan.get("stop_and_call_if", []) if p not in builtin.stop]
    plan["weekly_schedule"] = build_schedule(kept, fixed_targets)
