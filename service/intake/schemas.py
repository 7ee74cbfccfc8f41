"""The referral input contract (DESIGN.md "The referral").

These pydantic models are the single source of truth for what a referral may
contain: the API validates with them, the OpenAPI document is generated from
them, and the plan engine and renderers receive a validated ``Referral``.

An absent key means "not known", which is not the same as an empty list
("none"): ``clinical.fractures is None`` means the fracture history is unknown.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from refflow.intake.contact import normalize_email, normalize_fax, normalize_phone
from refflow.intake.text import free_text, one_line

# ICD-10-CM: a letter, a digit, a digit or letter, then optionally a dot and
# up to four more characters (e.g. M81.0, M80.08XA, S22.080A, I10).
ICD10_PATTERN = re.compile(r"^[A-TV-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")

FractureSite = Literal["vertebral", "hip", "wrist", "humerus", "pelvis", "rib", "ankle", "other"]
MobilityAid = Literal["none", "cane", "walker", "rollator", "wheelchair"]
ActivityLevel = Literal["sedentary", "light", "active"]


def _icd10(value: str) -> str:
    code = value.strip().upper()
    if not ICD10_PATTERN.match(code):
        raise ValueError("not an ICD-10-CM code (e.g. M81.0)")
    return code


# A date is given as text, YYYY-MM-DD. A number is not a date: pydantic would
# read 0 as 1970-01-01 (seconds since the epoch).
_NUMBER = re.compile(r"\s*[-+]?[0-9]+(\.[0-9]*)?\s*")


def _date_text(value: object) -> object:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value  # a date from Python code
    if not isinstance(value, str) or _NUMBER.fullmatch(value):
        raise ValueError("not a date: give it as YYYY-MM-DD")
    return value


def today(info: ValidationInfo) -> dt.date:
    """"Today" for the referral's date rules: the ``today`` the caller passed
    in the validation context (the intake passes today in the clinic's
    timezone), else the local date."""
    return (info.context or {}).get("today") or dt.date.today()


def _not_in_future(value: dt.date, info: ValidationInfo) -> dt.date:
    if value > today(info):
        raise ValueError("date is in the future")
    return value


Phone = Annotated[str, Field(max_length=40), AfterValidator(normalize_phone)]
Fax = Annotated[str, Field(max_length=40), AfterValidator(normalize_fax)]
Email = Annotated[str, Field(max_length=254), AfterValidator(normalize_email)]
ICD10Code = Annotated[str, Field(max_length=10), AfterValidator(_icd10)]
ShortText = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(one_line)]
LongText = Annotated[str, Field(max_length=4000), AfterValidator(free_text)]
Date = Annotated[dt.date, BeforeValidator(_date_text)]
# One of the referral's own dates (a fracture, pain or a medication since):
# it has happened, so it is not after today.
PastDate = Annotated[dt.date, BeforeValidator(_date_text), AfterValidator(_not_in_future)]


# No patient referred for exercise is older than this: an earlier birth date is a typo.
MAX_AGE = 120


class Strict(BaseModel):
    """Base for every input model: unknown fields are errors, strings trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Patient(Strict):
    given_name: ShortText
    family_name: ShortText
    birth_date: Date
    sex: Literal["female", "male", "other", "unknown"]
    phone: Phone | None = None
    email: Email | None = None
    preferred_language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = "en"

    @field_validator("birth_date")
    @classmethod
    def _not_in_future(cls, value: dt.date, info: ValidationInfo) -> dt.date:
        if value > today(info):
            raise ValueError("birth date is in the future")
        now = today(info)
        if (now.year - value.year - ((now.month, now.day) < (value.month, value.day))
                > MAX_AGE):
            raise ValueError(f"birth date makes the patient older than {MAX_AGE} years; "
                             "check the year")
        return value


class Referrer(Strict):
    name: ShortText | None = None
    npi: Annotated[str, Field(pattern=r"^[0-9]{10}$")] | None = None
    phone: Phone | None = None
    fax: Fax | None = None
    email: Email | None = None

    @field_validator("npi")
    @classmethod
    def _npi_checksum(cls, value: str | None) -> str | None:
        if value is None:  # null: not given
            return None
        # NPI check digit: the Luhn check over "80840" + the ten digits.
        total = 0
        for i, ch in enumerate(reversed("80840" + value)):
            d = int(ch)
            if i % 2 == 1:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        if total % 10:
            raise ValueError("NPI check digit does not match")
        return value


class Diagnosis(Strict):
    codes: list[ICD10Code] = Field(default_factory=list, max_length=20)
    text: LongText | None = None

    @model_validator(mode="after")
    def _code_or_text(self) -> "Diagnosis":
        if not self.codes and not (self.text and self.text.strip()):
            raise ValueError("give at least one ICD-10-CM code or a text")
        return self


class Frax(Strict):
    major_osteoporotic: Annotated[float, Field(ge=0, le=100)] | None = None
    hip: Annotated[float, Field(ge=0, le=100)] | None = None


class Fracture(Strict):
    site: FractureSite
    level: Annotated[str, Field(max_length=20), AfterValidator(one_line)] | None = None
    date: PastDate | None = None
    low_trauma: bool | None = None


class Pain(Strict):
    score: Annotated[int, Field(ge=0, le=10)]
    site: Annotated[str, Field(max_length=100), AfterValidator(one_line)] | None = None
    since: PastDate | None = None
    after_minor_trauma: bool | None = None


class BloodPressure(Strict):
    systolic: Annotated[int, Field(ge=50, le=300)]
    diastolic: Annotated[int, Field(ge=20, le=200)]

    @model_validator(mode="after")
    def _order(self) -> "BloodPressure":
        if self.diastolic >= self.systolic:
            raise ValueError("diastolic must be lower than systolic")
        return self


# A condition's status as the referral gives it: only an acute or current one
# ("active", "flare") can be an absolute contraindication; "stable" is a
# controlled chronic condition; "resolved" is in the past.
ConditionStatus = Literal["active", "stable", "resolved", "flare"]
Route = Literal["oral", "inhaled", "topical", "eye", "injection", "other"]
# What a referral writes for "nothing": ["none"] is an empty list, not a condition.
NONE_ENTRIES = frozenset({
    "none", "nil", "nothing", "n/a", "na", "no known", "none known", "no known conditions",
    "no conditions", "no medical history", "no significant history", "no past medical history",
    "no known medications", "no medications", "no current medications", "no regular medications",
    "no meds", "none reported",
})


def _is_none_entry(entry: object) -> bool:
    return isinstance(entry, str) and entry.strip(" .").lower() in NONE_ENTRIES


class Condition(Strict):
    """A condition with its qualifiers; a plain string is a condition too."""

    text: ShortText | None = None
    code: ICD10Code | None = None
    status: ConditionStatus | None = None
    since: PastDate | None = None

    @model_validator(mode="after")
    def _text_or_code(self) -> "Condition":
        if not self.text and not self.code:
            raise ValueError("give a text or an ICD-10-CM code")
        return self


class Course(Strict):
    """One course of an intermittently taken medication (e.g. a steroid burst)."""

    start: PastDate
    days: Annotated[int, Field(ge=1, le=366)]
    dose_mg_per_day: Annotated[float, Field(ge=0, le=10000)] | None = None


class Medication(Strict):
    name: ShortText
    dose_mg_per_day: Annotated[float, Field(ge=0, le=10000)] | None = None
    since: PastDate | None = None
    route: Route | None = None
    course: Literal["continuous", "intermittent"] | None = None
    courses: list[Course] | None = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def _courses_are_intermittent(self) -> "Medication":
        if self.courses and self.course == "continuous":
            raise ValueError("courses are given, so the course is intermittent, not continuous")
        return self


class Clinical(Strict):
    t_score: Annotated[float, Field(ge=-7, le=4)] | None = None
    frax: Frax | None = None
    fractures: list[Fracture] | None = Field(default=None, max_length=50)
    falls_last_12_months: Annotated[int, Field(ge=0, le=365)] | None = None
    injurious_fall: bool | None = None
    fear_of_falling: bool | None = None
    mobility_aid: MobilityAid | None = None
    can_rise_from_floor: bool | None = None
    pain: Pain | None = None
    blood_pressure: BloodPressure | None = None
    conditions: list[ShortText | Condition] | None = Field(default=None, max_length=50)
    medications: list[ShortText | Medication] | None = Field(default=None, max_length=50)
    activity_level: ActivityLevel | None = None
    exercise_history: LongText | None = None
    gym_access: bool | None = None
    contraindications_text: LongText | None = None

    @field_validator("conditions", "medications")
    @classmethod
    def _none_means_empty(cls, entries: list | None) -> list | None:
        """["none"], ["nil"], ["no known"]: the referral says there are none."""
        if entries is None:
            return None
        return [e for e in entries if not _is_none_entry(e)]


class Deliver(Strict):
    fax_to_referrer: bool = True
    email_to_patient: bool = True
    chart_pdf: bool = True


class Referral(Strict):
    """A referral as a referring office submits it (POST /api/v1/referrals)."""

    external_id: Annotated[str, Field(min_length=1, max_length=100),
                           AfterValidator(one_line)] | None = None
    patient: Patient
    referrer: Referrer = Field(default_factory=Referrer)
    diagnosis: Diagnosis
    clinical: Clinical = Field(default_factory=Clinical)
    goals: list[ShortText] = Field(default_factory=list, max_length=20)
    urgency: Literal["routine", "urgent"] = "routine"
    deliver: Deliver = Field(default_factory=Deliver)
    notes: LongText | None = None

    @model_validator(mode="after")
    def _dates_consistent(self) -> "Referral":
        """None of the referral's own dates falls before the patient was born."""
        born = self.patient.birth_date
        clinical = self.clinical
        dated = [(f"clinical.fractures.{i}.date", "a fracture date", f.date)
                 for i, f in enumerate(clinical.fractures or [])]
        dated += [(f"clinical.conditions.{i}.since", "a condition's date", c.since)
                  for i, c in enumerate(clinical.conditions or []) if isinstance(c, Condition)]
        if clinical.pain:
            dated.append(("clinical.pain.since", "the pain's start", clinical.pain.since))
        for i, m in enumerate(clinical.medications or []):
            if isinstance(m, Medication):
                dated.append((f"clinical.medications.{i}.since", "a medication's start", m.since))
                dated += [(f"clinical.medications.{i}.courses.{j}.start", "a course's start",
                           c.start) for j, c in enumerate(m.courses or [])]
        for path, what, day in dated:
            if day and day < born:
                raise ValueError(f"{what} is before the birth date ({path})")
        return self

    def age_on(self, day: dt.date) -> int:
        """The patient's age in whole years on ``day``."""
        born = self.patient.birth_date
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))
