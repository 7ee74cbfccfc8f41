"""The exercise catalogue's patient texts in other languages (data, not code).

A language's texts live in ``data/catalog.<lang>.json``::

    {"language": "es", "reviewed": false,
     "falls_support": "…",            # the balance cue the falls overlay adds
     "exercises": {"chin_tuck": {"name": "…", "equipment": "…",
                                 "instructions": ["…", …],
                                 "safety_cue": "…", "progression": "…", "regression": "…"}}}

``reviewed`` is the language's mark: ``false`` until a native-speaking
clinician has checked the texts. A language is *complete* when every
exercise a home plan may hold (``home_plan`` not false) has all of
:data:`FIELDS`. A plugin's exercise carries its own texts the same way, in a
``translations`` key of its catalogue entry (``{"es": {"name": …, …}}``).

The plan records the result: each exercise gets ``translations`` (by
language), and the plan ``language`` (the handout's) and
``translation_reviewed``. Documents read them from the plan; they never
import this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

FIELDS = ("name", "equipment", "instructions", "safety_cue", "progression", "regression")
SOURCE_LANGUAGE = "en"


@lru_cache(maxsize=8)
def catalog_texts(language: str) -> dict[str, Any] | None:
    """The built-in catalogue's texts in ``language`` (None if there are none)."""
    if not language.isalpha() or len(language) > 8:
        return None
    path = resources.files("refflow.planning").joinpath(f"data/catalog.{language}.json")
    if not path.is_file():
        return None
    return json.loads(path.read_text("utf-8"))


def complete(texts: Mapping[str, Any] | None) -> bool:
    """Whether an exercise's texts (one language) have every field."""
    if not isinstance(texts, Mapping):
        return False
    for field in FIELDS:
        value = texts.get(field)
        if field == "instructions":
            if not isinstance(value, list) or not value or not all(
                    isinstance(s, str) and s.strip() for s in value):
                return False
        elif not isinstance(value, str) or not value.strip():
            return False
    return True


def language_status(language: str, catalog) -> tuple[bool, bool]:
    """(complete, reviewed) for the built-in catalogue in ``language``."""
    if language == SOURCE_LANGUAGE:
        return True, True
    data = catalog_texts(language)
    if not data:
        return False, False
    texts = data.get("exercises") or {}
    home = [e.id for e in catalog.exercises if "all" not in e.avoid_for]  # home_plan
    whole = all(complete(texts.get(ex_id)) for ex_id in home) and bool(data.get("falls_support"))
    return whole, data.get("reviewed") is True


def handout_language(language: str, catalog, allow_unreviewed: bool) -> tuple[str | None, bool]:
    """The language the patient's texts can be given in: ``(language, reviewed)``,
    or ``(None, False)`` when ``language`` has no complete translation, or only
    an unreviewed one and the clinic does not allow those."""
    whole, reviewed = language_status(language, catalog)
    if not whole or not (reviewed or allow_unreviewed):
        return None, reviewed
    return language, reviewed


def exercise_texts(entry: Mapping[str, Any], language: str, *, falls_support: bool,
                   plugin_texts: Mapping[str, Any] | None, local_units) -> dict | None:
    """One plan exercise's texts in ``language``, made the way the English ones
    were (units for the clinic, the falls overlay's cue first), or None."""
    data = catalog_texts(language) or {}
    texts = plugin_texts if plugin_texts is not None else (data.get("exercises") or {}).get(entry["id"])
    if not complete(texts):
        return None
    out = {field: (list(texts[field]) if field == "instructions" else str(texts[field]))
           for field in FIELDS}
    for field in ("equipment", "safety_cue", "progression", "regression"):
        out[field] = local_units(out[field])
    out["instructions"] = [local_units(step) for step in dict.fromkeys(out["instructions"])]
    if falls_support:
        cue = data.get("falls_support")
        if not cue:
            return None
        out["safety_cue"] = f"{cue} {out['safety_cue']}"
    return out


def translate_plan(plan: dict, language: str, *, falls_high: bool,
                   extra_exercises=(), local_units) -> list[str]:
    """Give each of the plan's exercises its texts in ``language``
    (``translations``); the ids of those that have none (a plugin's exercise
    without them). When any is missing no exercise keeps a translation."""
    plugin_texts = {}
    for entry in extra_exercises:
        if isinstance(entry, Mapping) and isinstance(entry.get("translations"), Mapping):
            plugin_texts[entry.get("id")] = entry["translations"].get(language) or {}
    missing = []
    for ex in plan.get("exercises") or []:
        plugin = ex.get("source", "refflow") != "refflow"
        texts = exercise_texts(
            ex, language, falls_support=falls_high and ex.get("component") == "balance",
            plugin_texts=plugin_texts.get(ex["id"], {}) if plugin else None,
            local_units=local_units)
        if texts is None:
            missing.append(ex["id"])
        else:
            ex.setdefault("translations", {})[language] = texts
    if missing:
        for ex in plan.get("exercises") or []:
            ex.pop("translations", None)
    return missing


def interpreter_flag(language: str, missing: list[str]) -> dict:
    return {"code": "interpreter_needed", "severity": "needs_review", "source": "refflow",
            "message": f"The patient's preferred language is {language}, but exercise(s) "
                       f"{', '.join(missing)} have no text in it; the handout is in English. "
                       "Arrange an interpreter or a translated handout before the plan goes to "
                       "the patient."}

