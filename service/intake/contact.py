"""Phone numbers and email addresses as refflow stores them: numbers in E.164,
emails in their normalised form. The one home for both, used by the referral
schema, the practice and user accounts, and the delivery channels."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email

DEFAULT_PHONE_REGION = "US"


def normalize_phone(value: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """The number in E.164 (``+17635550100``); ``ValueError`` when it is not a
    valid phone number (the message does not repeat it)."""
    try:
        number = phonenumbers.parse(value or "", region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str) -> str:
    """The address in its normalised form; ``ValueError`` when it is not valid
    (deliverability is not checked: no DNS lookups)."""
    try:
        return validate_email(value or "", check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValueError("not a valid email address") from None
