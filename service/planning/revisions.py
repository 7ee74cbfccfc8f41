"""A clinician's edit of a plan: ``revise(...)`` → the plan's next version.

Pure Python (no Flask, Celery or database), like the engine. What a clinician
may change (``proposed``):

- ``exercises``: ``[{"id", "dose": {"sets", "reps", "hold_seconds", "minutes", "text"},
  "days_per_week", "phase_from"}]`` in the order the patient sees them; every
  exercise's content (name, instructions, category, impact, spine flags …)
  comes from the catalogue (or a plugin's ``extra_exercises``), never from
  the client. The other fields of a plan's exercise may be sent back as they
  were read and are ignored. A dose's ``text`` is the engine's words from its
  numbers unless the clinician writes their own (a text that differs from
  the current version's): then the dose keeps it, marked ``text_edited``
  (the handout shows it as written, in any language), while its numbers
  stay the same; an empty text, or new numbers without a new text, go back
  to the engine's words;
- ``patient_notes``: notes to the patient (printed in the handout);
- ``precautions``: added to the engine's own precautions (which stay);
- ``phases``: each stage's text (``changes``, or its alias ``targets``) and
  weeks (``week_from``, ``week_to``).

A key left out is unchanged. Every version is re-checked with the engine's
own hard rules (``rules.exclusion_rule`` per exercise, no exercise in a plan
the engine must not draft, balance work every day, strength on 2-3 days,
aerobic on 3-5 — 2 with high falls risk). A change that breaks one raises
``SafetyRuleBroken`` naming the rule and its evidence, unless an ``override``
reason is given: then each broken rule is kept in ``plan["overrides"]``.
Rules the weekly schedule cannot represent (strength on 4 days, a plan that
must have no exercises because of a red flag) cannot be overridden.

Plugins' ``refflow_adjust_plan`` rules are not re-run over a clinician's edit.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from refflow.intake.schemas import Referral
from refflow.planning import gates
from refflow.planning import rules as R
from refflow.planning.catalog import CatalogError, Exercise, exercise_from_mapping, load_catalog
from refflow.planning.decision import decide
from refflow.planning.evidence import RULES as EVIDENCE_RULES
from refflow.planning.evidence import evidence_entry
from refflow.planning.risk import assess_risk, derive_facts
from refflow.planning.schedule import build_schedule, empty_schedule
from refflow.planning.translations import interpreter_flag, translate_plan

ENGINE_AUTHOR = "engine"
ENGINE_REASON = "the engine's draft"
MAX_TEXT = 500
MAX_ITEMS = 40
DOSE_FIELDS = ("sets", "reps", "hold_seconds", "minutes")
EDITABLE = {"id", "dose", "days_per_week", "phase_from"}
# What a plan's exercise also holds: sent back as read, ignored (content is the catalogue's).
READ_ONLY = {"name", "category", "component", "impact", "spinal_flexion", "spinal_rotation", "loaded",
             "end_range", "equipment", "muscle_groups", "dose_target", "instructions", "safety_cue",
             "progression", "regression", "source", "drawing"}
PHASE_KEYS = {"phase", "name", "week_from", "week_to", "changes", "targets"}
URGENT_GATES = ("suspected_vertebral_fracture", "spinal_red_flag", "blood_pressure_urgent",
                "unstable_cardiopulmonary")
WITHHOLDING_GATES = ("diagnosis_in_scope", "age_in_scope", "fracture_dates_valid")


class InvalidRevision(ValueError):
    """The proposed plan is malformed; ``fields`` names each bad field (values never echoed)."""

    def __init__(self, message: str, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})


class SafetyRuleBroken(Exception):
    """The proposed plan breaks the engine's hard safety rules.

    ``violations``: ``[{"rule", "exercise" (id or None), "evidence", "source",
    "overridable"}]``; ``evidence`` is the guideline summary behind the rule.
    """

    def __init__(self, violations: list[dict]) -> None:
        self.violations = violations
        names = ", ".join(f"{v['rule']}" + (f" ({v['exercise']})" if v.get("exercise") else "")
                          for v in violations)
        fixed = not all(v.get("overridable", True) for v in violations)
        super().__init__(f"the change breaks safety rule(s): {names}"
                         + ("; at least one cannot be overridden" if fixed
                            else "; give an override reason to keep it"))

    @property
    def overridable(self) -> bool:
        return all(v.get("overridable", True) for v in self.violations)


class VersionConflict(Exception):
    """The plan changed since the version the editor started from."""

    def __init__(self, expected: int | None, current: int) -> None:
        super().__init__(f"the plan is at version {current}, not {expected}: another change "
                         "came first; reload it and edit again")
        self.expected = expected
        self.current = current


# -- versions -------------------------------------------------------------------


def current_version(plan: Mapping) -> int:
    v = plan.get("version")
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else 1


def first_version_entry(at: str) -> dict:
    return {"version": 1, "author": ENGINE_AUTHOR, "at": at, "reason": ENGINE_REASON}


def versions_of(plan: Mapping) -> list[dict]:
    """The plan's version list (a plan stored before versions existed is version 1)."""
    versions = plan.get("versions")
    if isinstance(versions, list) and versions:
        return [dict(v) for v in versions if isinstance(v, Mapping)]
    return [first_version_entry(str(plan.get("as_of") or ""))]


# -- the edit ---------------------------------------------------------------------


def revise(referral: Referral, plan: Mapping, proposed: Mapping, *, as_of: dt.date, author: str,
           at: dt.datetime, reason: str, override: str | None = None,
           extra_exercises: Sequence[Mapping] = (), locale: str = "en_US") -> dict:
    """The plan's next version with the clinician's changes (``plan`` is not changed).

    ``locale`` is the clinic's, as for ``engine.build_plan``: an added exercise's
    weights are in the same units as the rest of the plan."""
    reason = _text(reason, "reason", required=True)
    if override is not None:
        override = _text(override, "override", required=True)
    if not isinstance(proposed, Mapping):
        raise InvalidRevision("the plan must be an object", {"plan": "must be an object"})
    unknown = sorted(set(proposed) - {"exercises", "patient_notes", "precautions", "phases"})
    if unknown:
        raise InvalidRevision("unknown field(s): " + ", ".join(str(k)[:40] for k in unknown),
                              {f"plan.{str(k)[:40]}": "unknown field" for k in unknown})
    d = _draft(referral, as_of, extra_exercises, locale)
    lookup = {e.id: e for e in d.catalog.exercises}
    lookup.update({e.id: e for e in d.extras})
    new = copy.deepcopy(dict(plan))
    targets = copy.deepcopy(plan.get("targets") or {})
    fixed_days: list[dict] = []
    if "exercises" in proposed:
        new["exercises"], fixed_days = _exercises(proposed["exercises"], plan, lookup, targets, d)
        new["targets"] = targets
    if "patient_notes" in proposed:
        new["patient_notes"] = _texts(proposed["patient_notes"], "patient_notes")
    if "precautions" in proposed:
        own = R.precautions(d)
        given = _texts(proposed["precautions"], "precautions")
        new["precautions"] = own + [p for p in given if p not in own]
    if "phases" in proposed:
        new["phases"] = _phases(proposed["phases"], plan.get("phases") or [])
    if new.get("exercises"):
        new["weekly_schedule"] = build_schedule(new["exercises"], new.get("targets") or {})
    else:
        new["weekly_schedule"] = empty_schedule()

    changes = describe(diff_plans(plan, new))
    if not changes:
        raise InvalidRevision("nothing changed: this version would be the same as the last",
                              {"plan": "no change"})

    before = {_vkey(v) for v in _violations(plan, lookup, d, plan.get("exercises") or [])}
    found = fixed_days + _violations(new, lookup, d, new["exercises"])
    kept_overrides = [dict(o) for o in plan.get("overrides") or [] if isinstance(o, Mapping)]
    overridden = {(o.get("rule"), o.get("exercise")) for o in kept_overrides}
    broken = [v for v in found if _vkey(v) not in before and _vkey(v) not in overridden]
    if broken and (override is None or not all(v["overridable"] for v in broken)):
        raise SafetyRuleBroken(broken)

    version = current_version(plan) + 1
    still = {_vkey(v) for v in found}
    overrides = [o for o in kept_overrides if (o.get("rule"), o.get("exercise")) in still]
    for v in broken:
        overrides.append({"rule": v["rule"], "exercise": v["exercise"], "reason": override,
                          "by": author, "at": at.isoformat(), "version": version,
                          "evidence": v["evidence"]})
    new["overrides"] = overrides
    new["version"] = version
    new["versions"] = versions_of(plan) + [{"version": version, "author": author,
                                            "at": at.isoformat(), "reason": reason,
                                            "changes": changes}]
    new.setdefault("patient_notes", [])
    new.pop("approved", None)  # a new version is not yet approved
    _keep_language(new, d, extra_exercises)
    new["decision"] = decide(new)
    return new


def _keep_language(new: dict, d: R.Draft, extra_exercises: Sequence[Mapping]) -> None:
    """A plan in the patient's language stays in it: every exercise (an added
    one too) gets its texts; an exercise without them puts the plan back in
    English, held with ``interpreter_needed`` (planning/translations.py)."""
    language = new.get("language") or "en"
    if language == "en":
        return
    missing = translate_plan(new, language, falls_high=d.risk.falls_high,
                             extra_exercises=extra_exercises,
                             local_units=lambda text: R.local_units(text, d.pounds))
    if missing:
        new["language"], new["translation_reviewed"] = "en", True
        new["flags"] = [*(new.get("flags") or []), interpreter_flag(language, missing)]


def _vkey(v: Mapping) -> tuple:
    return (v.get("rule"), v.get("exercise"))


def _draft(referral: Referral, as_of: dt.date, extra_exercises: Sequence[Mapping],
           locale: str = "en_US") -> R.Draft:
    """The engine's view of this referral: facts, risk, gates and the exclusion profile."""
    if not isinstance(as_of, dt.date) or isinstance(as_of, dt.datetime):
        raise TypeError("as_of must be a datetime.date")
    catalog = load_catalog()
    facts = derive_facts(referral, as_of)
    d = R.Draft(facts=facts, risk=assess_risk(facts), catalog=catalog, pounds=R.uses_pounds(locale))
    extras: list[Exercise] = []
    seen = set(catalog.by_id)
    for entry in extra_exercises:
        source = str(entry.get("plugin") or entry.get("source") or "plugin")[:60] \
            if isinstance(entry, Mapping) else "plugin"
        try:
            ex = exercise_from_mapping(entry, source=source)
        except CatalogError:
            continue
        if ex.id not in seen:
            seen.add(ex.id)
            extras.append(ex)
    d.extras = tuple(extras)
    for rule in gates.GATES:
        rule(d)
    R.impact_limit(d)  # the exclusion profile
    return d


def _text(value: Any, field: str, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidRevision(f"{field} must be text", {field: "must be text"})
    value = value.strip()
    if required and not value:
        raise InvalidRevision(f"{field} is required", {field: "required"})
    if len(value) > MAX_TEXT:
        raise InvalidRevision(f"{field} is longer than {MAX_TEXT} characters",
                              {field: f"at most {MAX_TEXT} characters"})
    if any(ord(ch) < 32 or 0x7f <= ord(ch) < 0xa0 for ch in value):
        raise InvalidRevision(f"{field} must be one line of text",
                              {field: "no control characters or line breaks"})
    return value


def _texts(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise InvalidRevision(f"{field} must be a list of at most {MAX_ITEMS} texts",
                              {field: "must be a list of texts"})
    out: list[str] = []
    for i, item in enumerate(value):
        text = _text(item, f"{field}[{i}]", required=True)
        if text not in out:
            out.append(text)
    return out


def _int(value: Any, field: str, low: int, high: int, *, nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRevision(f"{field} must be a whole number from {low} to {high}"
                              + (" or null" if nullable else ""),
                              {field: f"a whole number {low}-{high}"})
    return value


def _component(entry: Mapping | None, ex: Exercise) -> str:
    comp = entry.get("component") if entry else None
    return comp if isinstance(comp, str) and comp else R.component_of(ex)


def _exercises(value: Any, plan: Mapping, lookup: Mapping[str, Exercise], targets: dict,
               d: R.Draft) -> tuple[list[dict], list[dict]]:
    """The new exercise entries, and the day-limit violations found on the way."""
    if not isinstance(value, list) or len(value) > 60:
        raise InvalidRevision("exercises must be a list", {"exercises": "must be a list"})
    current = {e.get("id"): e for e in plan.get("exercises") or [] if isinstance(e, Mapping)}
    seen: set[str] = set()
    rows: list[tuple[Exercise, str, dict | None, tuple, int | None, int]] = []
    for i, item in enumerate(value):
        path = f"exercises[{i}]"
        if isinstance(item, str):
            item = {"id": item}
        if not isinstance(item, Mapping):
            raise InvalidRevision(f"{path} must be an object", {path: "must be an object"})
        unknown = sorted(str(k)[:40] for k in set(item) - EDITABLE - READ_ONLY)
        if unknown:
            raise InvalidRevision(f"{path}: unknown field(s) " + ", ".join(unknown),
                                  {f"{path}.{k}": "unknown field" for k in unknown})
        ex_id = item.get("id")
        if not isinstance(ex_id, str) or ex_id not in lookup:
            raise InvalidRevision(f"{path}.id is not an exercise in the catalogue",
                                  {f"{path}.id": "not in the exercise catalogue"})
        if ex_id in seen:
            raise InvalidRevision(f"{path}.id is listed twice", {f"{path}.id": "listed twice"})
        seen.add(ex_id)
        ex, old = lookup[ex_id], current.get(ex_id)
        base = old.get("dose") if old and isinstance(old.get("dose"), Mapping) else None
        dose = [base.get(k) if base else v for k, v in zip(DOSE_FIELDS, ex.dose[:4])]
        given = item.get("dose")
        if given is not None:
            if not isinstance(given, Mapping):
                raise InvalidRevision(f"{path}.dose must be an object", {f"{path}.dose": "an object"})
            bad = sorted(str(k)[:40] for k in set(given) - set(DOSE_FIELDS)
                         - {"text", "text_edited", "per_side"})
            if bad:
                raise InvalidRevision(f"{path}.dose: unknown field(s) " + ", ".join(bad),
                                      {f"{path}.dose.{k}": "unknown field" for k in bad})
            for j, k in enumerate(DOSE_FIELDS):
                if k in given:
                    dose[j] = _int(given[k], f"{path}.dose.{k}", 0, 600, nullable=True) or None
        days = item.get("days_per_week")
        if days is not None:
            days = _int(days, f"{path}.days_per_week", 1, 7)
        phase = item.get("phase_from")
        phase = _int(phase, f"{path}.phase_from", 1, 4) if phase is not None else \
            (old.get("phase_from") if old and isinstance(old.get("phase_from"), int) else ex.phase_from)
        own = _own_words(given, base, tuple(dose), path)
        rows.append((ex, _component(old, ex), old, tuple(dose), days, phase, own))

    fixed: list[dict] = []
    for comp, rule, low, high, lowest in (
            ("strength", "strength_all_major_groups", 2, 3, 2),
            ("aerobic", "aerobic_low_impact", 2 if d.risk.falls_high else 3, 5, 2)):
        target = targets.get(comp)
        if not isinstance(target, dict):
            continue
        now = target.get("days_per_week")
        asked = {days for ex, c, old, dose, days, phase, own in rows if c == comp and days is not None
                 and days != (old.get("days_per_week") if old else now)}
        if len(asked) > 1:
            raise InvalidRevision(f"every {comp} exercise is done on the same days: give one "
                                  "days_per_week for them",
                                  {"exercises": f"{comp} days_per_week differ"})
        if asked:
            n = asked.pop()
            if not lowest <= n <= high:  # the weekly schedule cannot place it
                fixed.append(_violation(rule, None, overridable=False))
            elif n < low:
                fixed.append(_violation(rule, None))
            target["days_per_week"] = n
            if comp == "strength":
                target["minutes_per_week"] = n * 30

    out: list[dict] = []
    for ex, comp, old, dose, days, phase, own in rows:
        old_dose = tuple((old.get("dose") or {}).get(k) for k in DOSE_FIELDS) if old else None
        if old and old_dose == dose and phase == old.get("phase_from") and (
                days is None or days == old.get("days_per_week")) and own == _edited_text(old):
            out.append(copy.deepcopy(dict(old)))
            continue
        if days is None:
            days = old.get("days_per_week") if old else (7 if comp == "balance" else ex.days_per_week)
        shaped = dataclasses.replace(ex, dose=(*dose, ex.dose[4]), phase_from=phase)
        entry = R.exercise_entry(shaped, comp, d, days)
        if own:
            entry["dose"].update(text=own, text_edited=True)
        start, target = entry["dose"], entry["dose_target"]
        if any((start[k] or 0) > (target[k] or 0) for k in DOSE_FIELDS):
            entry["dose_target"] = dict(start)
        out.append(entry)
    return out, fixed


def _edited_text(entry: Mapping) -> str | None:
    """The entry's dose text when it is a clinician's own words (``text_edited``)."""
    dose = entry.get("dose") if isinstance(entry.get("dose"), Mapping) else {}
    return dose.get("text") if dose.get("text_edited") is True else None


def _own_words(given: Any, base: Mapping | None, dose: tuple, path: str) -> str | None:
    """The dose text in the clinician's own words that the new version keeps:
    a text sent that differs from the current version's (one sent back as
    read is not new), or the current version's own words while the numbers
    stay the same. An empty text goes back to the engine's words."""
    sent = given.get("text") if isinstance(given, Mapping) else None
    old_text = base.get("text") if base else None
    if sent is not None:
        sent = _text(sent, f"{path}.dose.text")
        if not sent:
            return None
        if sent != old_text:
            return sent
    if base and base.get("text_edited") is True and tuple(
            base.get(k) for k in DOSE_FIELDS) == dose:
        return old_text
    return None


def _phases(value: Any, current: list) -> list[dict]:
    if not isinstance(value, list) or len(value) != len(current):
        raise InvalidRevision(f"phases must list the plan's {len(current)} stages",
                              {"phases": f"a list of {len(current)} stages"})
    out: list[dict] = []
    last_to: int | None = 0
    for i, (item, old) in enumerate(zip(value, current)):
        path = f"phases[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidRevision(f"{path} must be an object", {path: "must be an object"})
        unknown = sorted(str(k)[:40] for k in set(item) - PHASE_KEYS)
        if unknown:
            raise InvalidRevision(f"{path}: unknown field(s) " + ", ".join(unknown),
                                  {f"{path}.{k}": "unknown field" for k in unknown})
        phase = dict(old)
        if "phase" in item and item["phase"] != old.get("phase"):
            raise InvalidRevision(f"{path}.phase must be {old.get('phase')}",
                                  {f"{path}.phase": "stages keep their order"})
        text = item.get("changes", item.get("targets"))
        if text is not None:
            phase["changes"] = _text(text, f"{path}.changes", required=True)
        if "week_from" in item:
            phase["week_from"] = _int(item["week_from"], f"{path}.week_from", 1, 104)
        if "week_to" in item:
            phase["week_to"] = _int(item["week_to"], f"{path}.week_to", 1, 104,
                                    nullable=i == len(current) - 1)
        if last_to is None or phase["week_from"] <= last_to or (
                phase["week_to"] is not None and phase["week_to"] < phase["week_from"]):
            raise InvalidRevision(f"{path}: the stages' weeks must follow each other",
                                  {f"{path}.week_from": "stages' weeks overlap or go backwards"})
        last_to = phase["week_to"]
        out.append(phase)
    return out


# -- the safety re-check -------------------------------------------------------------


def _violation(rule: str, exercise: str | None, *, overridable: bool = True) -> dict:
    entry = evidence_entry(rule) if rule in EVIDENCE_RULES else {"summary": "", "source": ""}
    return {"rule": rule, "exercise": exercise, "evidence": entry["summary"],
            "source": entry["source"], "overridable": overridable}


def _violations(plan: Mapping, lookup: Mapping[str, Exercise], d: R.Draft,
                exercises: list) -> list[dict]:
    """Every hard rule the plan's exercises break (the engine's own predicates)."""
    out: list[dict] = []
    ids = [e.get("id") for e in exercises if isinstance(e, Mapping)]
    if ids and (d.urgent or plan.get("decision") == "do_not_exercise"):
        rule = next((r for r in URGENT_GATES if r in d.fired), "suspected_vertebral_fracture")
        out.extend(_violation(rule, i, overridable=False) for i in ids)
    elif ids and not d.planning:
        rule = next((r for r in WITHHOLDING_GATES if r in d.fired), "diagnosis_in_scope")
        out.extend(_violation(rule, i) for i in ids)
    for i in ids:
        ex = lookup.get(i)
        if ex is None:
            continue  # not in today's catalogue: judged when it was added
        rule = R.exclusion_rule(ex, d.profile)
        if rule is not None:
            out.append(_violation(rule, i))
    if d.planning and ids:
        schedule = plan.get("weekly_schedule") or []
        balance = {e.get("id") for e in exercises if isinstance(e, Mapping)
                   and (e.get("component") or e.get("category")) == "balance"}
        if not balance or any(not balance & set(day.get("exercises") or []) for day in schedule):
            out.append(_violation("balance_every_plan", None))
    return out


# -- differences between versions ----------------------------------------------------


def diff_plans(a: Mapping, b: Mapping) -> dict:
    """What changed from plan ``a`` to plan ``b`` (for the timeline and the staff page)."""
    ea = {e.get("id"): e for e in a.get("exercises") or [] if isinstance(e, Mapping)}
    eb = {e.get("id"): e for e in b.get("exercises") or [] if isinstance(e, Mapping)}
    changed = []
    for i, e in eb.items():
        if i not in ea:
            continue
        fields = {}
        for k in ("days_per_week", "phase_from"):
            if ea[i].get(k) != e.get(k):
                fields[k] = [ea[i].get(k), e.get(k)]
        da, db = ea[i].get("dose") or {}, e.get("dose") or {}
        for k in DOSE_FIELDS:
            if da.get(k) != db.get(k):
                fields[f"dose.{k}"] = [da.get(k), db.get(k)]
        if da.get("text") != db.get("text") and (da.get("text_edited") or db.get("text_edited")):
            fields["dose.text"] = [da.get("text"), db.get("text")]
        if fields:
            changed.append({"id": i, "name": e.get("name") or i, "fields": fields})

    def lists(key: str) -> dict:
        la, lb = list(a.get(key) or []), list(b.get(key) or [])
        return {"added": [x for x in lb if x not in la], "removed": [x for x in la if x not in lb]}

    phases = [{"phase": pb.get("phase"), "fields": {k: [pa.get(k), pb.get(k)] for k in
                                                      ("week_from", "week_to", "changes")
                                                      if pa.get(k) != pb.get(k)}}
              for pa, pb in zip(a.get("phases") or [], b.get("phases") or []) if pa != pb]
    return {
        "added": [{"id": i, "name": e.get("name") or i} for i, e in eb.items() if i not in ea],
        "removed": [{"id": i, "name": e.get("name") or i} for i, e in ea.items() if i not in eb],
        "changed": changed,
        "order_changed": [i for i in ea if i in eb] != [i for i in eb if i in ea],
        "patient_notes": lists("patient_notes"),
        "precautions": lists("precautions"),
        "phases": phases,
    }


def describe(diff: Mapping) -> list[str]:
    """The diff as short lines: "removed Wall push-up", "Squat to chair: dose.sets 2 → 3"."""
    out = [f"removed {e['name']}" for e in diff["removed"]]
    out += [f"added {e['name']}" for e in diff["added"]]
    for e in diff["changed"]:
        out.append(f"{e['name']}: " + ", ".join(f"{k} {v[0]} → {v[1]}" for k, v in e["fields"].items()))
    if diff["order_changed"]:
        out.append("exercise order changed")
    for key, label in (("patient_notes", "patient note"), ("precautions", "precaution")):
        out += [f"added {label}" for _ in diff[key]["added"]]
        out += [f"removed {label}" for _ in diff[key]["removed"]]
    out += [f"stage {p['phase']}: " + ", ".join(p["fields"]) + " changed" for p in diff["phases"]]
    return out
