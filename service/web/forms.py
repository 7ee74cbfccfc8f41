"""The portal's referral form: its fields, turning the posted form into the API's
JSON shape (so ``parse_referral`` validates it exactly as it validates the
API), and putting the validation errors back next to each field.

Each input is named by its path in the JSON body (``patient.birth_date``), so
an error's ``fields`` key names the input it belongs to.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass, field

from refflow.intake.schemas import Referral
from refflow.intake.validation import InvalidReferral, parse_referral

TRI = [("", "Not known"), ("yes", "Yes"), ("no", "No")]
FRACTURE_ROWS = 2


@dataclass(frozen=True)
class Field:
    name: str  # the JSON path, also the input's name
    label: str
    kind: str = "text"  # text | date | number | select | tri | lines | textarea | email | tel | check
    required: bool = False
    hint: str = ""
    options: list = field(default_factory=list)
    default: str = ""
    autocomplete: str = "off"
    width: str = ""  # "short" for numbers and codes

    @property
    def id(self) -> str:
        return "f-" + self.name.replace(".", "-")


@dataclass(frozen=True)
class Fieldset:
    legend: str
    fields: list
    hint: str = ""


def _fracture_fields(i: int) -> list[Field]:
    sites = [("", "—")] + [(s, s) for s in ("vertebral", "hip", "wrist", "humerus", "pelvis",
                                            "rib", "ankle", "other")]
    return [
        Field(f"clinical.fractures.{i}.site", f"Fracture {i + 1}: site", "select", options=sites),
        Field(f"clinical.fractures.{i}.level", f"Fracture {i + 1}: level (e.g. T12)",
              width="short"),
        Field(f"clinical.fractures.{i}.date", f"Fracture {i + 1}: date", "date"),
        Field(f"clinical.fractures.{i}.low_trauma",
              f"Fracture {i + 1}: low trauma (e.g. a fall from standing)", "tri", options=TRI),
    ]


FIELDSETS = [
    Fieldset("Patient", [
        Field("patient.given_name", "Given name", required=True),
        Field("patient.family_name", "Family name", required=True),
        Field("patient.birth_date", "Date of birth", "date", required=True),
        Field("patient.sex", "Sex", "select", required=True,
              options=[("", "Choose…"), ("female", "Female"), ("male", "Male"),
                       ("other", "Other"), ("unknown", "Unknown")]),
        Field("patient.phone", "Phone", "tel", hint="Any common format, e.g. 763 555 0100"),
        Field("patient.email", "Email", "email",
              hint="The exercise handout is emailed here if you tick that below."),
        Field("patient.preferred_language", "Preferred language", default="en", width="short",
              hint="A language code such as en or es."),
    ]),
    Fieldset("Referral", [
        Field("external_id", "Your reference", hint="Your own id for this referral (optional).",
              width="short"),
        Field("urgency", "Urgency", "select", options=[("routine", "Routine"),
                                                       ("urgent", "Urgent")]),
        Field("diagnosis.codes", "ICD-10-CM codes", width="short",
              hint="Separate several codes with commas, e.g. M81.0, M85.80"),
        Field("diagnosis.text", "Diagnosis", "textarea",
              hint="Give at least a code or a diagnosis text."),
    ]),
    Fieldset("Referring clinician", [
        Field("referrer.name", "Name"),
        Field("referrer.npi", "NPI", width="short", hint="10 digits"),
        Field("referrer.phone", "Phone", "tel"),
        Field("referrer.fax", "Fax", "tel", hint="The plan summary is faxed here."),
        Field("referrer.email", "Email", "email"),
    ]),
    Fieldset("Bone health", [
        Field("clinical.t_score", "Lowest T-score", "number", width="short", hint="e.g. -2.8"),
        Field("clinical.frax.major_osteoporotic", "FRAX major osteoporotic (%)", "number",
              width="short"),
        Field("clinical.frax.hip", "FRAX hip (%)", "number", width="short"),
        Field("clinical.fracture_history", "Fractures since age 50", "select",
              options=[("", "Not known"), ("none", "None"), ("yes", "Yes — describe below")],
              hint="Not known is treated as the cautious case."),
        *[f for i in range(FRACTURE_ROWS) for f in _fracture_fields(i)],
    ]),
    Fieldset("Falls and mobility", [
        Field("clinical.falls_last_12_months", "Falls in the last 12 months", "number",
              width="short", hint="Leave empty if not known."),
        Field("clinical.injurious_fall", "Was a fall injurious?", "tri", options=TRI),
        Field("clinical.fear_of_falling", "Fear of falling", "tri", options=TRI),
        Field("clinical.mobility_aid", "Mobility aid", "select",
              options=[("", "Not known"), ("none", "None"), ("cane", "Cane"),
                       ("walker", "Walker"), ("rollator", "Rollator"),
                       ("wheelchair", "Wheelchair")]),
        Field("clinical.can_rise_from_floor", "Can rise from the floor", "tri", options=TRI),
    ]),
    Fieldset("Other health", [
        Field("clinical.pain.score", "Pain score (0–10)", "number", width="short"),
        Field("clinical.pain.site", "Pain site"),
        Field("clinical.pain.since", "Pain since", "date"),
        Field("clinical.pain.after_minor_trauma", "Pain began after minor trauma", "tri",
              options=TRI),
        Field("clinical.blood_pressure.systolic", "Blood pressure, systolic", "number",
              width="short"),
        Field("clinical.blood_pressure.diastolic", "Blood pressure, diastolic", "number",
              width="short"),
        Field("clinical.conditions", "Other conditions", "lines",
              hint="One per line: text or ICD-10-CM codes. Write none if there are none; "
                    "leave empty if not known."),
        Field("clinical.medications", "Medications", "lines",
              hint="One per line. Write none if there are none; leave empty if not known."),
        Field("clinical.contraindications_text", "Contraindications or restrictions",
              "textarea"),
    ]),
    Fieldset("Activity and goals", [
        Field("clinical.activity_level", "Activity level", "select",
              options=[("", "Not known"), ("sedentary", "Sedentary"), ("light", "Light"),
                       ("active", "Active")]),
        Field("clinical.exercise_history", "Exercise history", "textarea"),
        Field("clinical.gym_access", "Has access to a gym", "tri", options=TRI),
        Field("goals", "The patient's goals", "lines", hint="One per line."),
        Field("notes", "Notes for the therapist", "textarea"),
    ]),
    Fieldset("Send the results", [
        Field("deliver.fax_to_referrer", "Fax the plan summary to the referring clinician",
              "check", default="on"),
        Field("deliver.email_to_patient", "Email the exercise handout to the patient", "check",
              default="on"),
        Field("deliver.chart_pdf", "File a PDF in the clinic's chart", "check", default="on"),
    ]),
]
FIELDS = {f.name: f for fs in FIELDSETS for f in fs.fields}


def _own_names() -> dict[str, str]:
    """Each input's name where it is named away from the form (the error summary):
    its label, with its section where two inputs share one ("Phone (patient)",
    "Phone (referring clinician)")."""
    shared = Counter(f.label for f in FIELDS.values())
    return {f.name: f.label if shared[f.label] == 1 else f"{f.label} ({fs.legend.lower()})"
            for fs in FIELDSETS for f in fs.fields}


OWN_NAMES = _own_names()


def defaults(practice_fax: str | None = None, practice_email: str | None = None) -> dict:
    values = {name: f.default for name, f in FIELDS.items() if f.default}
    if practice_fax:
        values["referrer.fax"] = practice_fax
    if practice_email:
        values["referrer.email"] = practice_email
    return values


def posted_values(form) -> dict[str, str]:
    """What the user entered, kept as text to show the form again."""
    values = {}
    for name, f in FIELDS.items():
        if f.kind == "check":
            values[name] = "on" if form.get(name) else ""
        else:
            values[name] = (form.get(name) or "")[:4000]
    return values


def _set(body: dict, path: str, value) -> None:
    parts = path.split(".")
    node = body
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _tri(value: str):
    return {"yes": True, "no": False}.get(value)


def _lines(value: str) -> list[str]:
    """One item per line; a lone "none" means an empty list (known to be none)."""
    items = [line.strip() for line in re.split(r"[\r\n]+", value) if line.strip()]
    return [] if [i.lower() for i in items] == ["none"] else items


def to_body(values: dict[str, str]) -> tuple[dict, dict[str, str]]:
    """The JSON body the API would receive, and form-only errors.

    Text goes in as text: the API's own model turns "-2.8" into a number (and
    says so when it cannot), so both paths validate alike. Empty inputs are
    left out: an absent key means "not known".
    """
    body: dict = {}
    errors: dict[str, str] = {}
    for name, f in FIELDS.items():
        raw = values.get(name, "")
        if name.startswith("clinical.fractures.") or name == "clinical.fracture_history":
            continue
        if f.kind == "check":
            _set(body, name, bool(raw))
            continue
        raw = raw.strip()
        if not raw:
            continue
        if f.kind == "tri":
            value = _tri(raw)
            if value is not None:
                _set(body, name, value)
        elif name == "diagnosis.codes":
            _set(body, name, [c.strip() for c in re.split(r"[,;\s]+", raw) if c.strip()])
        elif f.kind == "lines":
            _set(body, name, _lines(raw))
        else:
            _set(body, name, raw)

    history = values.get("clinical.fracture_history", "")
    fractures = []
    for i in range(FRACTURE_ROWS):
        row = {}
        for key in ("site", "level", "date", "low_trauma"):
            raw = values.get(f"clinical.fractures.{i}.{key}", "").strip()
            if not raw:
                continue
            row[key] = _tri(raw) if key == "low_trauma" else raw
            if row[key] is None:
                row.pop(key)
        if row:
            fractures.append(row)
    if history == "none":
        if fractures:
            errors["clinical.fracture_history"] = "you chose None but described a fracture"
        else:
            _set(body, "clinical.fractures", [])
    elif history == "yes" or fractures:
        if not fractures:
            errors["clinical.fractures.0.site"] = "describe at least one fracture"
        else:
            _set(body, "clinical.fractures", fractures)
    # The form always has a diagnosis: left empty, the schema's own rule (a code
    # or a text) answers, rather than "diagnosis is required".
    body.setdefault("diagnosis", {})
    return body, errors


def validate(values: dict[str, str], *, today):
    """(referral model, body, {}) when valid, else (None, body, errors by input name);
    ``today``: the clinic's date (the referral's own dates may not be after it)."""
    body, errors = to_body(values)
    try:
        referral = parse_referral(body, today=today)
    except InvalidReferral as exc:
        for key, message in (exc.fields or {"body": exc.message}).items():
            name = input_for(key)
            errors.setdefault(name, message)
        return None, body, errors
    if errors:
        return None, body, errors
    return referral, body, {}


def summary(errors: dict[str, str]) -> list[tuple[str, str, str]]:
    """The error summary above the form: (input id, the input's own name, message)
    in the form's order; an error of the whole referral first, linked to the top."""
    order = {name: i for i, name in enumerate(FIELDS)}
    return [(FIELDS[name].id, OWN_NAMES[name], text) if name in FIELDS
            else ("form-top", "The referral", text)
            for name, text in sorted(errors.items(), key=lambda item: order.get(item[0], -1))]


def input_for(key: str) -> str:
    """The input an error key belongs to ('' for the whole form)."""
    if key in FIELDS:
        return key
    # a list item (diagnosis.codes.1) belongs to its list's input
    candidates = [n for n in FIELDS if key.startswith(n + ".")]
    if candidates:
        return max(candidates, key=len)
    # an object-level error (clinical.blood_pressure, diagnosis) goes to its first input
    for name in FIELDS:
        if name.startswith(key + "."):
            return name
    return ""


ERROR_WORDING = {
    "required": "This is required.",
}

# pydantic's own words for a number out of its range or not a number at all
# ("Input should be less than or equal to 10", "... a valid integer, ...").
NUMBER_ERROR = re.compile(
    r"^Input should be (?:(?:greater|less) than|a valid (?:number|integer)|a finite number)")


@functools.cache
def number_ranges() -> dict[str, tuple[float | None, float | None, bool]]:
    """(minimum, maximum, whole numbers only) of every number in the referral
    schema, by its JSON path (``clinical.pain.score``)."""
    schema = Referral.model_json_schema()
    defs = schema.get("$defs", {})
    ranges: dict[str, tuple[float | None, float | None, bool]] = {}

    def walk(node: dict, path: str, depth: int = 0) -> None:
        if depth > 20:
            return
        if "$ref" in node:
            node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
        for branch in node.get("anyOf", []) + node.get("allOf", []):
            walk(branch, path, depth + 1)
        if node.get("type") in ("integer", "number") and path:
            low = node.get("minimum", node.get("exclusiveMinimum"))
            high = node.get("maximum", node.get("exclusiveMaximum"))
            ranges[path] = (low, high, node["type"] == "integer")
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}" if path else key, depth + 1)

    walk(schema, "")
    return ranges


def _number_message(name: str) -> str | None:
    low, high, whole = number_ranges().get(name, (None, None, False))
    kind = "a whole number" if whole else "a number"
    if low is not None and high is not None:
        return f"Enter {kind} from {low:g} to {high:g}."
    if low is not None:
        return f"Enter {kind} of {low:g} or more."
    if high is not None:
        return f"Enter {kind} of {high:g} or less."
    return None


def message(text: str, name: str = "") -> str:
    """The words the office reads for a validation error on input ``name``."""
    if name and NUMBER_ERROR.match(text):
        plain = _number_message(name)
        if plain:
            return plain
    text = ERROR_WORDING.get(text, text)
    return text[:1].upper() + text[1:] if text else text
