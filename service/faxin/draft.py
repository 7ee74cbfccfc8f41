"""refflow's referral form, read or corrected by a person, as a referral payload.

``referral_payload(values)`` maps the form's field names
(``documents.referral_form.FIELDS``) to the JSON the API takes, so a draft
made from a fax goes through exactly the API's validation
(``refflow.intake.validation``).

Values are the strings ``reading.read_fax`` gives (or a person typed on the
review screen): dates ISO (``MM/DD/YYYY`` is taken too), a choice by its
referral value (``walker``; several comma-separated for the fractures),
``yes``/``no`` for a yes-or-no question, ``x`` for a marked checkbox.
Empty values are left out, so what the form did not say stays "not known".
A value that is not what its field takes (a T-score of "2.B") is passed on
as it is, so the API's validation names the field.

Two fields have no place of their own in the referral: the fractures' sites
are a list of fractures without dates, and the "latest fracture" date is
added to the notes (with one site marked, it is that fracture's date).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

YES = {"yes", "y", "x", "true", "1"}
NO = {"no", "n", "false", "0"}
_LIST_SEPARATORS = re.compile(r"[,;\n]+")
_US_DATE = re.compile(r"\s*(\d{1,2})\s*/\s*(\d{1,2})\s*/\s*(\d{4})\s*")


def referral_payload(values: Mapping[str, str]) -> dict:
    """The referral JSON for the form's values (empty values are left out)."""
    v = {name: "\n".join(" ".join(line.split()) for line in str(value).strip().splitlines())
         for name, value in values.items() if value is not None and str(value).strip()}
    out: dict = {}

    def put(path: str, value) -> None:
        *parents, last = path.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    for name in ("patient.family_name", "patient.given_name", "patient.phone", "patient.email",
                 "referrer.name", "referrer.npi", "referrer.phone", "referrer.fax",
                 "diagnosis.text", "clinical.contraindications_text", "notes"):
        if name in v:
            put(name, v[name])
    if "patient.birth_date" in v:
        put("patient.birth_date", _date(v["patient.birth_date"]))
    if "patient.sex" in v:
        put("patient.sex", {"f": "female", "m": "male"}.get(v["patient.sex"].lower(),
                                                              v["patient.sex"].lower()))
    if "urgency" in v:
        mark = v["urgency"].lower()
        put("urgency", "urgent" if mark in YES or mark == "urgent" else
            "routine" if mark in NO or mark == "routine" else mark)
    if "diagnosis.codes" in v:
        put("diagnosis.codes", [c.upper() for c in re.split(r"[\s,;]+", v["diagnosis.codes"])
                                if c])
    for name in ("clinical.t_score", "clinical.frax.major_osteoporotic", "clinical.frax.hip"):
        if name in v:
            put(name, _number(v[name], float))
    for name in ("clinical.blood_pressure.systolic", "clinical.blood_pressure.diastolic",
                 "clinical.falls_last_12_months", "clinical.pain.score"):
        if name in v:
            put(name, _number(v[name], int))
    for name in ("clinical.injurious_fall", "clinical.can_rise_from_floor",
                 "deliver.email_to_patient", "deliver.fax_to_referrer"):
        if name in v:
            put(name, _yes_no(v[name]))
    for name in ("clinical.mobility_aid", "clinical.activity_level"):
        if name in v:
            put(name, v[name].lower())
    for name in ("clinical.conditions", "clinical.medications", "goals"):
        if name in v:
            put(name, _list(v[name]))
    _fractures(v, out, put)
    return out


def _fractures(v: dict[str, str], out: dict, put) -> None:
    sites = [s.strip().lower() for s in v.get("clinical.fractures", "").split(",") if s.strip()]
    date = _date(v["clinical.fractures.date"]) if "clinical.fractures.date" in v else None
    marked = [s for s in sites if s != "none"]
    if marked:
        fractures = [{"site": site} for site in marked]
        if date and len(marked) == 1:
            fractures[0]["date"] = date
            date = None
        put("clinical.fractures", fractures)
    elif sites:  # "none"
        put("clinical.fractures", [])
    if date:
        line = f"Date of the latest fracture (from the form): {date}"
        put("notes", f"{out['notes']}\n{line}" if out.get("notes") else line)


def _date(text: str) -> str:
    """ISO as it is; MM/DD/YYYY (as the form prints it) turned into ISO."""
    match = _US_DATE.fullmatch(text)
    if match:
        month, day, year = (int(g) for g in match.groups())
        try:
            return dt.date(year, month, day).isoformat()
        except ValueError:
            return text
    return text.strip()


def _number(text: str, kind):
    """The number, or the text as it is (the validation then names the field)."""
    clean = text.replace("\u2212", "-").replace(",", ".").replace(" ", "")
    try:
        number = float(clean)
    except ValueError:
        return text
    if kind is int:
        return int(number) if number.is_integer() else text
    return number


def _yes_no(text: str):
    word = text.strip().lower()
    if word in YES:
        return True
    if word in NO:
        return False
    return text


def _list(text: str) -> list[str]:
    return [item.strip(" .") for item in _LIST_SEPARATORS.split(text) if item.strip(" .")]
