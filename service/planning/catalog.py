"""The exercise catalogue: loading, validation and precomputed indexes.

The catalogue is data (``data/catalog.json``), not code. Each entry carries
every field a plan needs (attributes the rules test, default dose, patient
instructions, safety cue, progression, regression). Entries the guidance
never allows in a home plan (sit-ups, toe touches, jump rope, ...) are kept
and marked (``avoid_for: ["all"]``, ``home_plan: false``) so the rules can
exclude them by name when a plugin or a referral brings them up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from refflow.planning.drawing import DrawingError, validate_drawing

CATEGORIES = ("mobility", "aerobic", "strength", "balance")
IMPACTS = ("none", "low", "moderate", "high")
IMPACT_RANK = {name: rank for rank, name in enumerate(IMPACTS)}
SPINE_FLAGS = ("spinal_flexion", "spinal_rotation", "loaded", "end_range")
BOOL_FIELDS = SPINE_FLAGS + ("rapid_or_repetitive_spine", "floor_transfer", "support_possible",
                             "supervision_required")
REQUIRED_FIELDS = ("id", "name", "category", "impact") + SPINE_FLAGS


class CatalogError(ValueError):
    """A catalogue entry is malformed (message names the field, not values)."""


@dataclass(frozen=True, slots=True)
class Exercise:
    id: str
    name: str
    category: str
    subcategory: str
    impact: str
    spinal_flexion: bool
    spinal_rotation: bool
    loaded: bool
    end_range: bool
    rapid_or_repetitive_spine: bool
    floor_transfer: bool
    support_possible: bool
    supervision_required: bool
    equipment: str
    muscle_groups: tuple[str, ...]
    dose: tuple[int | None, int | None, int | None, int | None, bool]  # sets, reps, hold, min, per_side
    days_per_week: int
    phase_from: int
    instructions: tuple[str, ...]
    safety_cue: str
    progression: str
    regression: str
    avoid_for: frozenset[str]
    avoid_reason: str
    tags: frozenset[str]
    source: str  # "refflow" for the built-in catalogue, else the plugin's name
    # how documents/drawings.py draws it (planning/drawing.py), completed; None: not drawn
    drawing: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)


def _int_or_none(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value > 1000:
        raise CatalogError(f"dose.{field} must be a small non-negative number")
    return int(value)


def exercise_from_mapping(entry: Mapping[str, Any], *, source: str = "refflow") -> Exercise:
    """Validate one catalogue entry (built-in or from a plugin)."""
    if not isinstance(entry, Mapping):
        raise CatalogError("a catalogue entry must be an object")
    for name in REQUIRED_FIELDS:
        if name not in entry:
            raise CatalogError(f"missing field {name!r}")
    ex_id = entry["id"]
    if not isinstance(ex_id, str) or not ex_id or len(ex_id) > 80:
        raise CatalogError("field 'id' must be a short string")
    if entry["category"] not in CATEGORIES:
        raise CatalogError("field 'category' is not one of " + ", ".join(CATEGORIES))
    if entry["impact"] not in IMPACTS:
        raise CatalogError("field 'impact' is not one of " + ", ".join(IMPACTS))
    flags = {}
    for name in BOOL_FIELDS:
        value = entry.get(name, name == "support_possible" and False)
        if name in SPINE_FLAGS and not isinstance(value, bool):
            raise CatalogError(f"field {name!r} must be true or false")
        flags[name] = bool(value)
    dose = entry.get("dose") or {}
    if not isinstance(dose, Mapping):
        raise CatalogError("field 'dose' must be an object")
    instructions = entry.get("instructions") or ()
    if isinstance(instructions, str):
        instructions = (instructions,)
    avoid_for = entry.get("avoid_for") or ()
    tags = entry.get("tags") or ()
    phase_from = entry.get("phase_from", 1)
    if not isinstance(phase_from, int) or not 1 <= phase_from <= 4:
        raise CatalogError("field 'phase_from' must be 1-4")
    days = entry.get("days_per_week", 2)
    if not isinstance(days, int) or not 1 <= days <= 7:
        raise CatalogError("field 'days_per_week' must be 1-7")
    drawing = None
    if entry.get("drawing") is not None:
        try:
            drawing = validate_drawing(entry["drawing"])
        except DrawingError as exc:
            raise CatalogError(f"exercise {ex_id!r}: {exc}") from None
    return Exercise(
        id=ex_id,
        name=str(entry["name"])[:120],
        category=entry["category"],
        subcategory=str(entry.get("subcategory") or ""),
        impact=entry["impact"],
        equipment=str(entry.get("equipment") or "none"),
        muscle_groups=tuple(str(g) for g in entry.get("muscle_groups") or ()),
        dose=(
            _int_or_none(dose.get("sets"), "sets"),
            _int_or_none(dose.get("reps"), "reps"),
            _int_or_none(dose.get("hold_seconds"), "hold_seconds"),
            _int_or_none(dose.get("minutes"), "minutes"),
            bool(dose.get("per_side", False)),
        ),
        days_per_week=days,
        phase_from=phase_from,
        instructions=tuple(str(s) for s in instructions),
        safety_cue=str(entry.get("safety_cue") or "Stop if it hurts and tell your therapist."),
        progression=str(entry.get("progression") or "Ask your therapist how to progress."),
        regression=str(entry.get("regression") or "Do fewer repeats, or skip it and ask your therapist."),
        avoid_for=frozenset(str(a) for a in avoid_for),
        avoid_reason=str(entry.get("avoid_reason") or ""),
        tags=frozenset(str(t) for t in tags),
        source=source,
        drawing=drawing,
        **flags,
    )


@dataclass(frozen=True, slots=True)
class ExtraRefused:
    """A plugin's exercise that was left out: ``code`` is ``invalid_plugin_exercise``
    or ``duplicate_plugin_exercise``."""

    source: str
    code: str
    message: str


def plugin_exercises(entries, known_ids) -> tuple[list[Exercise], list[ExtraRefused]]:
    """The plugins' catalogue entries as exercises (each tagged ``plugin``),
    leaving out, and naming, any that do not load or whose id is taken."""
    out: list[Exercise] = []
    refused: list[ExtraRefused] = []
    seen = set(known_ids)
    for entry in entries:
        source = "plugin"
        if isinstance(entry, Mapping):
            source = str(entry.get("plugin") or entry.get("source") or "plugin")[:60]
        try:
            ex = exercise_from_mapping(entry, source=source)
        except CatalogError as exc:
            refused.append(ExtraRefused(source, "invalid_plugin_exercise", str(exc)))
            continue
        if ex.id in seen:
            refused.append(ExtraRefused(source, "duplicate_plugin_exercise",
                                        f"exercise {ex.id!r} is already in the catalogue"))
            continue
        seen.add(ex.id)
        out.append(ex)
    return out, refused


@dataclass(frozen=True, eq=False)  # hashed by identity (used as a cache key)
class Catalog:
    version: str
    exercises: tuple[Exercise, ...]
    by_id: Mapping[str, Exercise]


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    raw = json.loads(resources.files("refflow.planning").joinpath("data/catalog.json").read_text("utf-8"))
    exercises = tuple(exercise_from_mapping(e) for e in raw["exercises"])
    by_id = {e.id: e for e in exercises}
    if len(by_id) != len(exercises):
        raise CatalogError("duplicate exercise id in the built-in catalogue")
    return Catalog(version=str(raw["version"]), exercises=exercises, by_id=by_id)


def dose_text(sets: int | None, reps: int | None, hold: int | None, minutes: int | None,
              per_side: bool = False) -> str:
    """Plain-language dose: "2 sets of 10 each side, hold 3 seconds"."""
    parts = []
    side = " each side" if per_side else ""
    if sets and reps:
        parts.append(f"{sets} set{'s' if sets != 1 else ''} of {reps}{side}")
    elif reps:
        parts.append(f"{reps} times{side}")
    elif sets and hold:
        parts.append(f"{sets} time{'s' if sets != 1 else ''}{side}")
    if hold:
        parts.append(f"hold {hold} second{'s' if hold != 1 else ''}")
    if minutes:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    if not parts:
        parts.append("as your therapist shows you")
    return ", ".join(parts)
