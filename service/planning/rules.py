"""The prescription rules (guidance §4-§5) as small named functions, and the
``Draft`` every rule works on.

Each rule takes the ``Draft`` (facts, risk, and the plan being built), does
one thing, and records what it did with ``draft.applied(rule, effect)``; the
guideline behind it comes from ``evidence.RULES``. The gates of ``gates.py``
(§1-§3) run first and produce flags; the rules here then choose exercises,
doses, targets and phases. ``exclusion_rule`` is the single safety predicate
used both while selecting and when re-checking a plan after plugin adjusters.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from babel import Locale
from babel.core import get_global
from babel.units import format_unit

from refflow.planning.catalog import IMPACT_RANK, IMPACTS, Catalog, Exercise, dose_text
from refflow.planning.risk import Facts, Risk

ALLOW_MODERATE_IMPACT_B = False  # guidance §4 / §9.1: clinic default is low impact for B
SEVERITIES = ("info", "caution", "needs_review")


@dataclass(frozen=True, slots=True)
class Profile:
    """The exclusion-relevant facts: plans with the same profile exclude the same exercises."""

    category: str
    falls_high: bool
    spine_c: bool  # category C or any vertebral fracture
    max_impact: str
    can_rise: bool
    gym: bool
    habitual_runner: bool
    non_ambulatory: bool = False  # a wheelchair user: only what is done sitting


@dataclass
class Draft:
    facts: Facts
    risk: Risk
    catalog: Catalog
    extras: tuple[Exercise, ...] = ()
    flags: list[dict] = field(default_factory=list)
    rules_applied: list[dict] = field(default_factory=list)
    fired: list[str] = field(default_factory=list)
    excluded: list[dict] = field(default_factory=list)
    urgent: bool = False
    withheld: bool = False
    profile: Profile | None = None
    selected: list[tuple[Exercise, str]] = field(default_factory=list)  # (exercise, component)
    strength_days: int = 2
    aerobic_days: int = 5
    aerobic_effort_cap: int = 10
    strength_effort_cap: int = 10
    goal_exercises: tuple[str, ...] = ()
    allowed: dict[str, Exercise] = field(default_factory=dict)
    days: dict[str, int] = field(default_factory=dict)  # days/week where not the catalogue default
    pounds: bool = True  # weights in the plan's text in pounds (US) or kilograms (uses_pounds)
    allow_unreviewed_translations: bool = False  # setting REFFLOW_ALLOW_UNREVIEWED_TRANSLATIONS
    language: str = "en"  # the handout's language (gates.language_review)
    language_reviewed: bool = True  # its translation's reviewed mark

    def flag(self, code: str, severity: str, message: str, source: str = "refflow") -> None:
        self.flags.append({"code": code, "severity": severity, "message": message, "source": source})

    def applied(self, rule: str, effect: str, plugin: str = "refflow") -> None:
        self.rules_applied.append({"rule": rule, "plugin": plugin, "effect": effect})
        if rule not in self.fired:
            self.fired.append(rule)

    @property
    def planning(self) -> bool:
        return not (self.urgent or self.withheld)


Rule = Callable[[Draft], None]


# ==========================================================================
# Exclusion predicates (§5): one safety predicate, used before and after plugins


def max_impact(category: str, falls_high: bool, pain: int | None, osteoarthritis: bool) -> str:
    limit = {"A": "moderate", "B": "moderate" if ALLOW_MODERATE_IMPACT_B else "low", "C": "low"}[category]
    if falls_high or (pain is not None and pain >= 4) or osteoarthritis:
        limit = "low" if IMPACT_RANK[limit] > IMPACT_RANK["low"] else limit
    return limit


def exclusion_rule(e: Exercise, p: Profile) -> str | None:
    """The first rule that excludes ``e`` for profile ``p`` (None = allowed)."""
    if e.impact == "high":
        return "no_high_impact"
    if e.spinal_flexion and (e.loaded or e.end_range or e.rapid_or_repetitive_spine):
        return "no_loaded_or_end_range_flexion"
    if e.spinal_rotation and (e.loaded or e.end_range or e.rapid_or_repetitive_spine):
        return "no_loaded_or_end_range_rotation"
    if e.supervision_required:
        return "supervised_only"
    if "all" in e.avoid_for:
        return "never_in_home_plan"
    if p.category in e.avoid_for or (p.spine_c and "C" in e.avoid_for) or (
            p.category == "C" and "B" in e.avoid_for):
        return "avoid_for_category"
    if p.falls_high and "F" in e.avoid_for:
        return "avoid_for_falls_risk"
    if IMPACT_RANK[e.impact] > IMPACT_RANK[p.max_impact]:
        return "impact_above_limit"
    if p.spine_c and e.spinal_flexion:
        return "no_spinal_flexion_category_c"
    if e.floor_transfer and (p.falls_high or not p.can_rise):
        return "no_floor_exercises"
    if p.falls_high and "brisk_walking_program" in e.tags:
        return "no_brisk_walking_program_falls_risk"
    if p.falls_high and e.category == "balance" and not e.support_possible:
        return "balance_needs_support"
    if "gym" in e.tags and not p.gym:
        return "needs_gym_access"
    if e.id == "jogging" and not p.habitual_runner:
        return "jogging_only_if_habitual"
    if p.non_ambulatory and "seated" not in e.tags:
        # guidance 3.2 non_ambulatory: the standing programme does not apply;
        # the draft keeps what is done in a chair, for a PT to build on
        return "standing_programme_not_applicable"
    return None


def profile_for(d: Draft) -> Profile:
    f, r = d.facts, d.risk
    return Profile(
        category=r.bone_category,
        falls_high=r.falls_high,
        spine_c=r.bone_category == "C" or f.any_vertebral,
        max_impact=max_impact(r.bone_category, r.falls_high, f.pain_score,
                              bool(f.conditions & {"osteoarthritis", "severe_osteoarthritis"})),
        can_rise=f.can_rise is True,
        gym=f.gym_access,
        habitual_runner=f.habitual_runner and r.bone_category == "A",
        non_ambulatory=f.aid == "wheelchair",
    )


def component_of(e: Exercise) -> str:
    if e.subcategory == "spinal_extensor":
        return "spinal_extensor"
    if e.subcategory == "impact_loading":
        return "impact"
    return e.category


# Program size (guidance §4). A session is one day's exercises; the guidance
# asks for about 8-12 per session and 6-8 strength exercises covering legs,
# hips, back, chest, shoulders and arms. One short daily routine (balance,
# posture, mobility) is repeated every day rather than rotated, so the patient
# learns a handful of exercises well [D].
SESSION_MAX = 12
SESSION_MIN = 8
STRENGTH_MIN, STRENGTH_MAX = 6, 8
BALANCE_DAILY = 3        # static (phase 1) -> static -> dynamic, every day
BALANCE_F_DAILY = 2      # high falls risk: two supported phase-1 exercises every day ...
BALANCE_F_EXTRA = 3      # ... and three more on each day without strength work (more volume)
EXTENSOR_COUNT = 1
MOBILITY_COUNT = 1
IMPACT_COUNT = 1

# Preference lists: the clinical order used to break ties (then catalogue order).
_STRENGTH_GROUPS = ("legs", "hips", "back", "chest", "shoulders", "arms")
_OTAGO_LEGS = ("sit_to_stand", "seated_knee_extension_weight", "standing_knee_flexion_weight",
               "standing_hip_abduction", "heel_raises", "toe_raises")
_STRENGTH = ("squat_to_chair", "band_seated_row", "wall_push_up", "step_up",
             "dumbbell_overhead_press_seated", "standing_hip_abduction", "heel_raises", "sit_to_stand",
             "band_standing_row", "incline_plank")
_STRENGTH_F = ("band_seated_row", "wall_push_up", "dumbbell_overhead_press_seated", "band_standing_row",
               "incline_plank")
# One exercise per movement pattern: a second squat or row adds length, not coverage.
_PATTERN = {"squat_to_chair": "squat", "sit_to_stand": "squat", "leg_press_machine": "squat",
            "band_seated_row": "row", "band_standing_row": "row", "lat_pulldown_machine": "row",
            "step_up": "single_leg", "supported_split_squat": "single_leg"}
_BALANCE = ("tandem_stance", "single_leg_stand", "tandem_walk", "weight_shift_heel_toe", "sideways_walk",
            "heel_walk", "toe_walk", "backwards_walk", "walk_and_turn", "knee_bends_supported")
_BALANCE_F = ("weight_shift_heel_toe", "tandem_stance", "sideways_walk", "tandem_walk", "single_leg_stand",
              "knee_bends_supported", "heel_walk", "toe_walk", "backwards_walk", "walk_and_turn")
_EXTENSOR_C = ("supine_head_shoulder_press", "seated_thoracic_extension", "wall_posture_slide")
_EXTENSOR_F = ("seated_thoracic_extension", "wall_posture_slide", "band_pull_apart")
_EXTENSOR = ("wall_posture_slide", "seated_thoracic_extension", "prone_lift_small")
_MOBILITY = ("doorway_chest_stretch", "standing_hip_flexor_stretch", "calf_stretch_wall", "chin_tuck")
_MOBILITY_F = ("doorway_chest_stretch", "calf_stretch_wall", "seated_ankle_circles", "chin_tuck")
_IMPACT = ("heel_drops", "marching_stamps")


def impact_limit(d: Draft) -> None:
    d.profile = p = profile_for(d)
    d.applied("impact_limit", f"maximum impact {p.max_impact}")


@lru_cache(maxsize=512)
def _catalog_exclusions(catalog: Catalog, p: Profile) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """Precomputed per profile: (excluded (id, rule) pairs, allowed ids in catalogue order)."""
    excluded, allowed = [], []
    for e in catalog.exercises:
        rule = exclusion_rule(e, p)
        if rule is None:
            allowed.append(e.id)
        else:
            excluded.append((e.id, rule))
    return tuple(excluded), tuple(allowed)


def exclude_unsafe(d: Draft) -> None:
    p = d.profile
    counts: dict[str, int] = {}
    pairs, allowed = _catalog_exclusions(d.catalog, p)
    d.allowed = {ex_id: d.catalog.by_id[ex_id] for ex_id in allowed}
    pairs = list(pairs)
    for e in d.extras:
        rule = exclusion_rule(e, p)
        if rule is not None:
            pairs.append((e.id, rule))
    for ex_id, rule in pairs:
        d.excluded.append({"id": ex_id, "rule": rule})
        counts[rule] = counts.get(rule, 0) + 1
    for rule in sorted(counts):
        d.applied(rule, f"excluded {counts[rule]} exercise(s)")
    excluded_ids = {x["id"] for x in d.excluded}
    blocked = [ex for ex in d.goal_exercises if ex in excluded_ids]
    if blocked:
        names = ", ".join(d.catalog.by_id[ex].name for ex in blocked)
        d.flag("goal_activity_not_advised", "caution",
               f"Goals mention activities the rules exclude for this patient: {names}.")
        d.applied("exclude_unsafe", "goal activities not advised flagged")


def _allowed(d: Draft) -> dict[str, Exercise]:
    return d.allowed


def _pick(d: Draft, ids: Iterable[str], allowed: dict[str, Exercise], component: str, limit: int) -> list[Exercise]:
    chosen = []
    have = {e.id for e, _ in d.selected}
    for ex_id in ids:
        if len(chosen) >= limit:
            break
        e = allowed.get(ex_id)
        if e is not None and ex_id not in have and e not in chosen:
            chosen.append(e)
            d.selected.append((e, component))
    return chosen


def _ranker(prefs: tuple[str, ...], allowed: dict[str, Exercise]) -> Callable[[Exercise], tuple[int, int]]:
    """Stable tie-break: position in the preference list, then catalogue order."""
    pref = {ex_id: i for i, ex_id in enumerate(prefs)}
    order = {ex_id: i for i, ex_id in enumerate(allowed)}
    return lambda e: (pref.get(e.id, len(pref)), order.get(e.id, len(order)))


def choose_strength(allowed: dict[str, Exercise], falls_high: bool) -> list[Exercise]:
    """6-8 strength exercises covering every major group, compound exercises first.

    High falls risk starts from the Otago leg set. Then, while a group is
    uncovered, the exercise covering the most uncovered groups is added (ties:
    preference list, then catalogue order). Then the list is filled to the
    minimum of 6 in preference order. One exercise per movement pattern.
    """
    pool = [e for e in allowed.values() if component_of(e) == "strength"]
    rank = _ranker(_STRENGTH_F if falls_high else _STRENGTH, allowed)
    chosen: list[Exercise] = [allowed[i] for i in (_OTAGO_LEGS if falls_high else ()) if i in allowed]
    n_fixed = len(chosen)
    patterns = {_PATTERN.get(e.id, e.id) for e in chosen}

    def add(e: Exercise) -> None:
        chosen.append(e)
        patterns.add(_PATTERN.get(e.id, e.id))

    def free(e: Exercise) -> bool:  # the pattern of a chosen exercise includes its own id
        return _PATTERN.get(e.id, e.id) not in patterns

    covered = {g for e in chosen for g in e.muscle_groups}
    while True:
        missing = {g for g in _STRENGTH_GROUPS if g not in covered}
        gains = [(len(missing & set(e.muscle_groups)), e) for e in pool if free(e)]
        gains = [(n, e) for n, e in gains if n]
        if not missing or not gains:
            break
        best = min(gains, key=lambda ne: (-ne[0], rank(ne[1])))[1]
        add(best)
        covered |= set(best.muscle_groups)
    fill = sorted((e for e in pool if free(e)), key=lambda e: (rank(e)[0], -len(e.muscle_groups), rank(e)[1]))
    for e in fill:
        if len(chosen) >= STRENGTH_MIN:
            break
        if free(e):
            add(e)
    return chosen[:n_fixed] + sorted(chosen[n_fixed:], key=rank)  # shown in clinical order


def choose_balance(allowed: dict[str, Exercise], falls_high: bool) -> tuple[list[Exercise], list[Exercise]]:
    """(daily, extra) balance exercises, each list static before dynamic.

    Every plan gets one exercise that starts in phase 1 and one dynamic one.
    High falls risk: two supported phase-1 exercises every day (the only
    balance work on strength days, so phase 1 still has balance daily) plus
    three more on each day without strength work: more balance volume.
    """
    rank = _ranker(_BALANCE_F if falls_high else _BALANCE, allowed)
    pool = sorted((e for e in allowed.values() if component_of(e) == "balance"), key=rank)
    n_daily, n_extra = (BALANCE_F_DAILY, BALANCE_F_EXTRA) if falls_high else (BALANCE_DAILY, 0)
    chosen = [e for e in pool if e.phase_from == 1][:n_daily if falls_high else 1]
    if not any(e.subcategory == "dynamic" for e in chosen):
        chosen += [e for e in pool if e.subcategory == "dynamic" and e not in chosen][:1]
    chosen = (chosen + [e for e in pool if e not in chosen])[:n_daily + n_extra]

    def order(e: Exercise) -> tuple:
        return (e.subcategory != "static", e.phase_from, rank(e))

    return sorted(chosen[:n_daily], key=order), sorted(chosen[n_daily:], key=order)


@lru_cache(maxsize=512)
def _programme(catalog: Catalog, p: Profile) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Per profile (the selection depends only on what is allowed): strength, daily and extra balance ids."""
    allowed = {ex_id: catalog.by_id[ex_id] for ex_id in _catalog_exclusions(catalog, p)[1]}
    daily, extra = choose_balance(allowed, p.falls_high)
    return (tuple(e.id for e in choose_strength(allowed, p.falls_high)),
            tuple(e.id for e in daily), tuple(e.id for e in extra))


def strength_all_major_groups(d: Draft) -> None:
    f_high = d.risk.falls_high
    chosen = [d.catalog.by_id[ex_id] for ex_id in _programme(d.catalog, d.profile)[0]]
    for e in chosen:
        d.selected.append((e, "strength"))
    covered = {g for e in chosen for g in e.muscle_groups}
    d.strength_days = 3 if (f_high or d.facts.activity == "active") else 2
    missing = [g for g in _STRENGTH_GROUPS if g not in covered]
    d.applied("strength_all_major_groups",
              f"{len(chosen)} strength exercises, compound first, covering "
              + ", ".join(g for g in _STRENGTH_GROUPS if g in covered)
              + f"; {d.strength_days} non-consecutive days/week"
              + ("; Otago leg set" if f_high else "")
              + (f"; not covered: {', '.join(missing)}" if missing else ""))


def balance_every_plan(d: Draft) -> None:
    _, daily_ids, extra_ids = _programme(d.catalog, d.profile)
    daily = [d.catalog.by_id[ex_id] for ex_id in daily_ids]
    extra = [d.catalog.by_id[ex_id] for ex_id in extra_ids]
    for e in daily:
        d.selected.append((e, "balance"))
        d.days[e.id] = 7
    for e in extra:
        d.selected.append((e, "balance"))
        d.days[e.id] = 7 - d.strength_days
    d.applied("balance_every_plan", f"{len(daily)} balance exercises daily"
              + (f", {len(extra)} more on the {7 - d.strength_days} days without strength work" if extra else "")
              + ("; all beside a support" if d.risk.falls_high else ""))
def aerobic_low_impact(d: Draft) -> None:
    allowed = _allowed(d)
    f_high = d.risk.falls_high
    primary = ("walking_comfortable",) if f_high else ("brisk_walking", "walking_comfortable")
    chosen = _pick(d, primary, allowed, "aerobic", 1)
    extra = [ex for ex in d.goal_exercises if ex in allowed and allowed[ex].category == "aerobic"]
    if d.profile.habitual_runner:
        extra.insert(0, "jogging")
    chosen += _pick(d, extra, allowed, "aerobic", 1)
    if not chosen:
        chosen = _pick(d, ("stationary_bike_upright",), allowed, "aerobic", 1)
    d.aerobic_days = 3 if f_high else 5
    d.applied("aerobic_low_impact", f"{len(chosen)} aerobic exercise(s), {d.aerobic_days} days/week"
              + (", moderate effort only" if d.profile.spine_c else ""))


def spinal_extensor_daily(d: Draft) -> None:
    allowed = _allowed(d)
    prefs = _EXTENSOR_F if d.risk.falls_high else (_EXTENSOR_C if d.profile.spine_c else _EXTENSOR)
    chosen = _pick(d, prefs + _EXTENSOR, allowed, "spinal_extensor", EXTENSOR_COUNT)
    d.applied("spinal_extensor_daily", f"{len(chosen)} spinal-extensor/posture exercises, daily")


def mobility_daily(d: Draft) -> None:
    allowed = _allowed(d)
    prefs = _MOBILITY_F if d.risk.falls_high else _MOBILITY
    chosen = _pick(d, prefs, allowed, "mobility", MOBILITY_COUNT)
    d.applied("mobility_daily", f"{len(chosen)} mobility exercises, daily")


def impact_loading_a(d: Draft) -> None:
    if d.profile.max_impact != "moderate":
        return
    chosen = _pick(d, _IMPACT, _allowed(d), "impact", IMPACT_COUNT)
    if chosen:
        d.applied("impact_loading_a", f"{len(chosen)} impact exercises from phase 2, 3 days/week")


def plugin_exercises(d: Draft) -> None:
    excluded = {x["id"] for x in d.excluded}
    for e in d.extras:
        if e.id not in excluded:
            d.selected.append((e, component_of(e)))
            d.applied("plugin_exercises", f"added plugin exercise {e.id}", plugin=e.source)


_COMPONENT_ORDER = ("strength", "balance", "aerobic", "spinal_extensor", "mobility", "impact")


def concise_programme(d: Draft, exercises: list[dict], schedule: list[dict]) -> None:
    """Record the programme's size (guidance §4: about 8-12 exercises a session, 6-8 for strength).

    Called by the engine once the schedule exists. The selection itself is made
    by the component rules above (fixed counts, compound strength exercises,
    stable tie-breaks); this rule states the result so a reviewer can check it.
    """
    counts: dict[str, int] = {}
    for e in exercises:
        counts[e["component"]] = counts.get(e["component"], 0) + 1
    parts = [f"{c} {counts.pop(c)}" for c in _COMPONENT_ORDER if c in counts]
    parts += [f"{c} {n}" for c, n in sorted(counts.items())]
    comp = {e["id"]: e["component"] for e in exercises}
    sizes = [len(day["exercises"]) for day in schedule]
    strength = [n for day, n in zip(schedule, sizes) if any(comp.get(i) == "strength" for i in day["exercises"])]
    plugin = sum(1 for e in exercises if e["source"] != "refflow")
    d.applied("concise_programme",
              f"{len(exercises)} distinct exercises ({', '.join(parts)}); {min(sizes)}-{max(sizes)} a day"
              + (f", {min(strength)}-{max(strength)} on strength days" if strength else "")
              + f" (guidance: about {SESSION_MIN}-{SESSION_MAX} a session)"
              + (f"; {plugin} from plugins" if plugin else ""))


PRESCRIPTION: tuple[Rule, ...] = (
    impact_limit, exclude_unsafe, strength_all_major_groups, balance_every_plan,
    aerobic_low_impact, spinal_extensor_daily, mobility_daily, impact_loading_a, plugin_exercises,
)

# ==========================================================================
# Doses, targets, phases, precautions


FALLS_SUPPORT = "Always stay right beside a sturdy support, close enough to grab it."
POUND_TERRITORIES = frozenset({"US", "LR", "MM"})  # CLDR: the countries that weigh in pounds
_KG = re.compile(r"\b(\d+(?:\.\d+)?) kg\b")


def uses_pounds(locale: str) -> bool:
    """Whether the plan for a clinic in ``locale`` ("en_US", "en_GB"; "en" is
    taken as its likely territory, the US) gives weights in pounds."""
    parsed = Locale.parse(locale)
    territory = parsed.territory or Locale.parse(
        get_global("likely_subtags").get(parsed.language, "und_US")).territory
    return territory in POUND_TERRITORIES


def local_units(text: str, pounds: bool) -> str:
    """``text`` with the catalogue's kilograms ("about 1 kg") in pounds ("about 2 lb") if ``pounds``."""
    if not pounds:
        return text
    return _KG.sub(lambda m: format_unit(max(1, round(float(m.group(1)) * 2.20462)), "mass-pound",
                                         length="short", locale="en_US"), text)


def _dose_dict(sets, reps, hold, minutes, per_side, suffix: str = "") -> dict:
    return {"sets": sets, "reps": reps, "hold_seconds": hold, "minutes": minutes,
            "text": dose_text(sets, reps, hold, minutes, per_side) + suffix}


def exercise_entry(e: Exercise, component: str, d: Draft, days: int) -> dict:
    sets, reps, hold, minutes, per_side = e.dose
    spine_c, f_high = d.profile.spine_c, d.risk.falls_high
    suffix = ""
    if component == "aerobic" and spine_c:
        suffix = ", in bouts of 10 minutes or more"
    start = _dose_dict(sets, reps, hold, minutes, per_side, suffix)
    # full (phase 3) dose
    t_sets, t_reps, t_hold, t_min = sets, reps, hold, minutes
    if component == "strength":
        # guidance 4: category C keeps "the same sets and reps" (its limit is
        # effort, RPE <= 6); the Otago set for high falls risk stays at 2
        t_sets = 2 if f_high else 3
    elif component == "spinal_extensor":
        t_reps = 10 if reps else reps
        t_hold = 5 if hold else hold
    elif component == "aerobic":
        t_min = 30  # Otago: walking up to 30 minutes, with the usual aid for high falls risk
    elif component == "impact":
        t_reps = 25 if per_side else 50
    elif component in ("balance", "mobility"):
        if hold:
            t_hold, t_sets = 30, 3
        elif sets and reps and e.category == "balance" and e.subcategory == "dynamic" and reps == 10 and sets == 2:
            t_sets = 4
        if minutes and e.id == "tai_chi":
            t_min = 30
    target = _dose_dict(t_sets, t_reps, t_hold, t_min, per_side, suffix)
    instructions = [local_units(step, d.pounds) for step in dict.fromkeys(e.instructions)]
    safety_cue = local_units(e.safety_cue, d.pounds)
    if f_high and component == "balance":
        # guidance 4, F overlay: always holding or beside a stable support. The
        # catalogue's first step says how to hold on (both hands to start) and
        # its progression how to reduce hand support step by step.
        safety_cue = f"{FALLS_SUPPORT} {safety_cue}"
    return {
        "id": e.id,
        "name": e.name,
        "category": e.category,
        "component": component,
        "impact": e.impact,
        "spinal_flexion": e.spinal_flexion,
        "spinal_rotation": e.spinal_rotation,
        "loaded": e.loaded,
        "end_range": e.end_range,
        "equipment": local_units(e.equipment, d.pounds),
        "muscle_groups": list(e.muscle_groups),
        "dose": start,
        "dose_target": target,
        "days_per_week": days,
        "instructions": instructions,
        "safety_cue": safety_cue,
        "progression": local_units(e.progression, d.pounds),
        "regression": local_units(e.regression, d.pounds),
        "phase_from": e.phase_from,
        "source": e.source,
        **({"drawing": copy.deepcopy(dict(e.drawing))} if e.drawing else {}),
    }


def effort_ceilings(d: Draft) -> dict:
    spine_c, f_high, cat = d.profile.spine_c, d.risk.falls_high, d.risk.bone_category

    def cap(values, ceiling):
        return {str(i + 1): min(v, ceiling) for i, v in enumerate(values)}

    strength = [4, 6, 8]
    if cat == "C" or spine_c:
        strength = [4, 5, 6]
    if f_high:
        strength = [min(a, b) for a, b in zip(strength, [4, 6, 6])]
    aerobic = [5, 6, 8]
    if spine_c:
        aerobic = [5, 6, 6]
    if f_high:
        aerobic = [min(a, b) for a, b in zip(aerobic, [4, 5, 6])]
    balance = [3, 4, 5] if f_high else [3, 5, 6]
    targets = {
        "strength": {"days_per_week": d.strength_days, "minutes_per_week": d.strength_days * 30,
                     "effort_max": cap(strength, d.strength_effort_cap)},
        "aerobic": {"days_per_week": d.aerobic_days,
                    "minutes_per_week": d.aerobic_days * 30,
                    "effort_max": cap(aerobic, d.aerobic_effort_cap)},
        "balance": {"days_per_week": 7, "minutes_per_week": 120, "effort_max": cap(balance, 10)},
        "mobility": {"days_per_week": 7, "minutes_per_week": 35, "effort_max": cap([3, 3, 3], 10)},
    }
    components = {c for _, c in d.selected}
    if "spinal_extensor" in components:
        targets["spinal_extensor"] = {"days_per_week": 7, "minutes_per_week": 70,
                                      "effort_max": cap([3, 4, 5], 10)}
    if "impact" in components:
        targets["impact"] = {"days_per_week": 3, "minutes_per_week": 15,
                             "effort_max": cap([0, 5, 6], 10)}
    d.applied("effort_ceilings", "effort ceilings by phase: strength "
              + "/".join(str(v) for v in targets["strength"]["effort_max"].values())
              + ", aerobic " + "/".join(str(v) for v in targets["aerobic"]["effort_max"].values()))
    return targets


def _range(values: Iterable[int]) -> str:
    """"10", or "8-10" for several different numbers."""
    values = sorted(set(values))
    return f"{values[0]}-{values[-1]}" if len(values) > 1 else str(values[0])


def _sets(n: int) -> str:
    return f"{n} set{'s' if n != 1 else ''}"


def phases(d: Draft, targets: dict, exercises: Iterable[dict] = ()) -> list[dict]:
    """The four stages. Every dose they name is the exercises' own: the
    starting ``dose`` (stage 1) and the full ``dose_target`` (stage 3), so the
    stages and the exercise cards never disagree."""
    by_comp: dict[str, list[dict]] = {}
    for e in exercises:
        by_comp.setdefault(e["component"], []).append(e)
    s = targets["strength"]["effort_max"]
    a = targets["aerobic"]["effort_max"]
    f_high = d.risk.falls_high
    one, two, three = [], [], []  # the sentences of stages 1-3

    strength = [e for e in by_comp.get("strength", []) if e["dose"]["sets"] and e["dose"]["reps"]]
    if strength:
        reps = _range(e["dose"]["reps"] for e in strength)
        start = min(e["dose"]["sets"] for e in strength)
        full = max(e["dose_target"]["sets"] for e in strength)
        one.append(f"Strength: {_sets(start)} of {reps}, effort up to {s['1']} out of 10.")
        two.append(f"Strength: {_sets(min(start + 1, full))} of {reps} (a new exercise starts with "
                   f"{_sets(start)}), effort up to {s['2']} out of 10.")
        three.append(f"Strength: {_sets(full)} of {reps}, effort up to {s['3']} out of 10.")
    aerobic = [e for e in by_comp.get("aerobic", []) if e["dose"]["minutes"]]
    if aerobic:
        first = aerobic[0]
        what = "Walking" if "walk" in first["id"] else first["name"]
        start, full = first["dose"]["minutes"], first["dose_target"]["minutes"]
        one.append(f"{what}: {start} minutes, effort up to {a['1']} out of 10.")
        two.append(f"{what}: add 5 minutes a week, up to {full} minutes, effort up to {a['2']} out of 10.")
        three.append(f"{what}: {full} minutes, effort up to {a['3']} out of 10.")
    support = "always beside a support" if f_high or d.profile.spine_c else "at a counter"
    one.append(f"Balance: about 10 minutes a day in all, {support}, holding on with both hands: "
               "go through your balance exercises again until the time is up.")
    moving = any(e["phase_from"] == 2 for e in by_comp.get("balance", []))
    two.append("Balance: about 15 minutes a day"
               + ("; start the moving exercises" if moving else "")
               + "; hold on with one hand, then fingertips.")
    three.append("Balance: 15-20 minutes a day in all.")
    posture = by_comp.get("spinal_extensor", [])
    if posture:
        three.append(f"Posture: {posture[0]['dose_target']['text']}, repeated to fill 5-10 minutes a day.")
    impact = by_comp.get("impact", [])
    if impact:
        first = impact[0]
        what = first["name"].split(" (")[0]
        two.append(f"{what}: start with {first['dose']['reps']}, adding 5 a week.")
        three.append(f"{what}: up to {first['dose_target']['reps']}.")
    result = [
        {"phase": 1, "name": "Get started", "week_from": 1, "week_to": 2,
         "changes": " ".join(["Learn each exercise.", *one])},
        {"phase": 2, "name": "Build up", "week_from": 3, "week_to": 6, "changes": " ".join(two)},
        {"phase": 3, "name": "Reach your goal", "week_from": 7, "week_to": 12,
         "changes": " ".join(three)},
        {"phase": 4, "name": "Keep it up", "week_from": 13, "week_to": None,
         "changes": "Do the stage 3 amounts."
                    + ("" if f_high else " Tai chi or dancing can be added for balance.")},
    ]
    d.applied("phases", "4 phases over 12 weeks, then maintenance")
    return result


STOP_AND_CALL_IF = (
    "You have chest pain or tightness. Call 911 if rest does not stop it.",
    "You feel dizzy, light-headed or faint.",
    "You are very short of breath.",
    "You have sudden new back pain, or back pain that is much worse.",
    "You fall and are hurt, or you hit your head.",
    "You have new numbness or weakness in your legs, or new trouble controlling your bladder or bowels.",
)


def stop_and_call(d: Draft) -> list[str]:
    items = list(STOP_AND_CALL_IF)
    if "anticoagulant" in d.facts.med_classes:
        items.append("You fall while taking a blood thinner, even if you feel fine.")
    if "hypoglycaemic" in d.facts.med_classes or "diabetes" in d.facts.conditions:
        items.append("You feel shaky, sweaty or confused (possible low blood sugar).")
    return items


FALL_PLAN_TITLE = "If you fall and cannot get up"
FALL_PLAN = (
    "Stay calm and do not rush. Check if you are hurt.",
    "If you can, roll onto your side, then get onto your hands and knees.",
    "Crawl to a sturdy chair, put your hands on the seat and slowly get up.",
    "If you cannot get up, call for help: use your phone or your alarm button, or shout.",
    "While you wait, keep warm with anything nearby and move your legs now and then.",
    "Tell your therapist about every fall, even if you were not hurt.",
)


def precautions(d: Draft) -> list[str]:
    """Plain-language precautions: each speaks only of what the plan can hold.

    They depend on the facts, risk and profile only (not on the selection), so
    a clinician's revision of the plan re-derives the same list."""
    if not d.planning:
        # the stop-and-call list is printed once, on its own, not repeated here
        return ["Do not start an exercise program until your doctor has seen you."]
    f_high, spine_c = d.risk.falls_high, d.profile.spine_c
    out = [
        "Start slowly: the first two weeks are easier on purpose.",
        "Breathe out as you lift or push; never hold your breath.",
        ("Bend at your hips and knees with a straight back; avoid bending forward from the waist, "
         "especially when lifting or twisting."),
        "Do not do sit-ups, crunches, toe touches, deep forward bends or forced twists.",
        # jogging is in the plan of a habitual runner only (aerobic_low_impact)
        "Do not jump or skip." if d.profile.habitual_runner else "Do not jump, skip or jog.",
    ]
    if spine_c:
        out.append("Do not lift anything from the floor and avoid heavy lifting; work on good form before "
                   "adding weight.")
    if f_high:
        aid = d.facts.aid not in (None, "none", "wheelchair")
        out.append("Do every balance exercise next to a kitchen counter or sturdy support."
                   + (" Keep your walking aid nearby and the floor clear." if aid else " Keep the floor clear."))
        out.append("Do not do exercises on the floor.")
        out.append(f"{FALL_PLAN_TITLE}: " + " ".join(FALL_PLAN))
    out += [
        ("Mild effort or stretch is fine. If pain during exercise goes above 5 out of 10, or is new or "
         "worse the next day, go back to the previous stage."),
        ("Move to the next stage only if pain stays at 3 out of 10 or less and is no worse the next day, "
         "you have had no falls or near-falls, and you did at least 2 of every 3 sessions. Change one "
         "thing at a time: repeats, then sets, then weight."),
        "See your therapist again at 12 weeks, and after any fall, new fracture or new diagnosis.",
    ]
    d.applied("precautions", f"{len(out)} precautions, stop-and-call list")
    return out


IMPACTS_ORDER = IMPACTS
