"""FHIR datatypes: reading them into the referral's values (a CodeableConcept's
codes and words, ICD-10-CM codes as refflow writes them, a HumanName, a date, a
Dosage's mg a day and its route), and writing an instant."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable

from fhir.resources.R4B.codeableconcept import CodeableConcept

from refflow.interop.fhir.codes import ICD10CM, ROUTES_SNOMED, SNOMED

ROUTE_WORDS = (("oral", "oral"), ("mouth", "oral"), ("inhal", "inhaled"),
               ("respiratory", "inhaled"), ("topical", "topical"), ("cutaneous", "topical"),
               ("ophthalmic", "eye"), ("eye", "eye"), ("intramuscular", "injection"),
               ("subcutaneous", "injection"), ("intravenous", "injection"),
               ("inject", "injection"))
DAYS_PER_UNIT = {"h": 1 / 24, "d": 1, "wk": 7, "mo": 30, "a": 365}


def pick(items, *tests: Callable) -> tuple[int, object | None]:
    """The first item passing the first test that any passes, with its index."""
    for test in tests:
        for k, item in enumerate(items or []):
            if test(item):
                return k, item
    return 0, None


def codes(concept: CodeableConcept | None, system: str) -> set[str]:
    if concept is None:
        return set()
    return {c.code for c in concept.coding or [] if c.system == system and c.code}


def concept_text(concept: CodeableConcept | None, prefer: str | None = None) -> str | None:
    """A concept's words: its text, else a display (``prefer``'s system first)."""
    if concept is None:
        return None
    if concept.text and concept.text.strip():
        return concept.text.strip()
    codings = sorted(concept.coding or [], key=lambda c: c.system != prefer)
    return next((c.display.strip() for c in codings if c.display and c.display.strip()), None)


def concept_words(concept: CodeableConcept) -> list[str]:
    """Every word of a concept: its text and each coding's display."""
    return [w for w in [concept.text, *(c.display for c in concept.coding or [])] if w]


def icd10_codes(concept: CodeableConcept) -> list[tuple[str, int]]:
    """ICD-10-CM codes with their coding's index; a code written without its
    dot (M810) is given one (M81.0), as refflow writes them."""
    out = []
    for k, coding in enumerate(concept.coding or []):
        if coding.system == ICD10CM and coding.code:
            code = coding.code.strip().upper()
            if "." not in code and len(code) > 3:
                code = f"{code[:3]}.{code[3:]}"
            out.append((code, k))
    return out


def display_name(resource) -> str | None:
    names = getattr(resource, "name", None)
    if isinstance(names, str):  # an Organization's name
        return names.strip() or None
    _, name = pick(names, lambda n: n.use == "official", lambda n: True)
    if name is None:
        return None
    if name.text and name.text.strip():
        return name.text.strip()
    parts = [*(name.prefix or []), *(name.given or []), name.family or "", *(name.suffix or [])]
    return " ".join(p for p in parts if p) or None


def date_text(value) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)  # a partial date ("1951"): refflow says it is not a date


def is_day(value) -> bool:
    """Whether a FHIR date or dateTime names a day (a partial date does not)."""
    return isinstance(value, dt.datetime | dt.date)


def instant(value: dt.datetime) -> str:
    """A FHIR instant, in UTC to the second."""
    return value.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def mg_per_day(dosage) -> float | None:
    """The dose in mg a day, when the dosage gives it in mg with a frequency."""
    if dosage is None or not dosage.doseAndRate or dosage.timing is None \
            or dosage.timing.repeat is None:
        return None
    quantity = dosage.doseAndRate[0].doseQuantity
    repeat = dosage.timing.repeat
    if quantity is None or quantity.value is None or (quantity.code or quantity.unit) != "mg" \
            or not repeat.period or repeat.periodUnit not in DAYS_PER_UNIT:
        return None
    per_day = decimal.Decimal(quantity.value) * (repeat.frequency or 1) / (
        decimal.Decimal(repeat.period) * decimal.Decimal(str(DAYS_PER_UNIT[repeat.periodUnit])))
    return round(float(per_day), 3)


def route(concept: CodeableConcept) -> str | None:
    for code in codes(concept, SNOMED):
        if code in ROUTES_SNOMED:
            return ROUTES_SNOMED[code]
    words = (concept_text(concept) or "").lower()
    if not words:
        return None
    return next((name for word, name in ROUTE_WORDS if word in words), "other")
