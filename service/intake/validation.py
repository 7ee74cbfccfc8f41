"""Validating a decoded referral: ``InvalidReferral`` names every bad field.

Messages name the field and the rule; they never repeat the submitted value.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from refflow.intake.schemas import Referral


class InvalidReferral(ValueError):
    """The referral does not validate; ``fields`` maps each bad field to why."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


# At most this many field names in an error message; ``fields`` names them all.
MESSAGE_NAMES = 20


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Each bad field's dotted path and why, in linear time however many there
    are (one pass over the errors and one over their paths' prefixes)."""
    found: dict[tuple, str] = {}
    not_text: set[tuple] = set()  # an object where a union also takes a string
    for err in exc.errors(include_input=False, include_url=False):
        loc = err["loc"]
        if err["type"] == "extra_forbidden":
            # the last part is the unknown key itself, whatever it is called
            loc = tuple(p for p in loc[:-1] if not _is_union_tag(p)) + loc[-1:]
            message = "unknown field"
        else:
            loc = tuple(p for p in loc if not _is_union_tag(p))
            message = ("required" if err["type"] == "missing"
                       else err["msg"].removeprefix("Value error, "))
        if loc in not_text:  # the object branch of the union says what is wrong
            found[loc] = message
            not_text.discard(loc)
        elif loc not in found and err["type"] == "string_type" and len(err["loc"]) > len(loc):
            found[loc] = message
            not_text.add(loc)
        else:
            found.setdefault(loc, message)
    # A union (a medication is a name or an object) reports both branches; keep
    # the more specific one: drop a path when a longer one starts with it.
    prefixes = {loc[:i] for loc in found for i in range(1, len(loc))}
    return {(".".join(str(part) for part in loc) or "body"): message
            for loc, message in found.items() if loc not in prefixes}


def _is_union_tag(part) -> bool:
    # pydantic names the branch of a union in the location ("Medication",
    # "str", "constrained-str", "function-after[one_line(), constrained-str]");
    # no field of the referral is named like that.
    return isinstance(part, str) and (part in {"str", "Medication", "Condition"}
                                      or part.startswith("constrained-") or "[" in part)


def _names(fields) -> str:
    names = list(fields)
    shown = ", ".join(names[:MESSAGE_NAMES])
    more = len(names) - MESSAGE_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


def clinic_today(timezone: str) -> dt.date:
    """Today at the clinic: the last day a referral's own dates may fall on."""
    return dt.datetime.now(ZoneInfo(timezone)).date()


def parse_referral(data: object, *, today: dt.date | None = None) -> Referral:
    """Validate a decoded JSON body; ``InvalidReferral`` names every bad field.

    ``today`` is the last day the referral's own dates (birth, fractures, pain,
    medications) may fall on: the intake passes today in the clinic's
    timezone; without it, the local date."""
    if not isinstance(data, dict):
        raise InvalidReferral("the referral must be a JSON object")
    try:
        return Referral.model_validate(data, context={"today": today} if today else None)
    except ValidationError as exc:
        fields = field_errors(exc)
        unknown = sorted(k for k, v in fields.items() if v == "unknown field")
        if unknown:
            message = "unknown field(s): " + _names(unknown)
        else:
            message = "the referral is not valid: " + _names(sorted(fields))
        raise InvalidReferral(message, fields) from None
