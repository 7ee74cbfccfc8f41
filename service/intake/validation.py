"""Validating a decoded referral: ``InvalidReferral`` names every bad field.

Messages name the field and the rule; they never repeat the submitted value.
"""

from __future__ import annotations

from pydantic import ValidationError

from refflow.intake.schemas import Referral


class InvalidReferral(ValueError):
    """The referral does not validate; ``fields`` maps each bad field to why."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


def field_errors(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(part) for part in err["loc"] if not _is_union_tag(part))
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "missing":
            message = "required"
        else:
            message = err["msg"].removeprefix("Value error, ")
        fields.setdefault(loc or "body", message)
    # A union (a medication is a name or an object) reports both branches; keep
    # the more specific one.
    return {k: v for k, v in fields.items()
            if not any(other.startswith(k + ".") for other in fields)}


def _is_union_tag(part) -> bool:
    # pydantic names the branch of a union in the location ("str", "Medication").
    return isinstance(part, str) and (part in {"str", "Medication"} or part.startswith("constrained-str"))


def parse_referral(data: object) -> Referral:
    """Validate a decoded JSON body; ``InvalidReferral`` names every bad field."""
    if not isinstance(data, dict):
        raise InvalidReferral("the referral must be a JSON object")
    try:
        return Referral.model_validate(data)
    except ValidationError as exc:
        fields = field_errors(exc)
        unknown = sorted(k for k, v in fields.items() if v == "unknown field")
        if unknown:
            message = "unknown field(s): " + ", ".join(unknown)
        else:
            message = "the referral is not valid: " + ", ".join(sorted(fields))
        raise InvalidReferral(message, fields) from None
