"""Phone numbers and email addresses as refflow stores them: numbers in E.164,
emails in their normalised form. The one home for both, used by the referral
schema, the practice and user accounts, and the delivery channels.

A fax number is a phone number that refflow will dial, so ``normalize_fax``
also checks what kind of line it is (libphonenumber's number types): a fax
can go to a fixed line, a fixed-line-or-mobile number (where the plan does
not tell them apart, as in the US and Canada), a mobile number, a toll-free
number or a VoIP number (internet fax services). It is refused for premium
rate and shared cost numbers (the caller pays the callee: toll fraud),
personal numbers (forwarding numbers, often charged like premium rate),
pagers, voicemail and universal access numbers (no fax machine answers
those), and numbers of no known type.
"""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import PhoneNumberType

from refflow.intake.text import one_line

DEFAULT_PHONE_REGION = "US"

# The kinds of line a fax may be sent to (see the module's docstring).
FAX_LINE_TYPES = frozenset({
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.VOIP,
})
# Why every other kind is refused (the message does not repeat the number).
_NOT_A_FAX_LINE = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number, which refflow does not dial",
    PhoneNumberType.SHARED_COST: "a shared-cost number, which refflow does not dial",
    PhoneNumberType.PERSONAL_NUMBER: "a personal (forwarding) number, which refflow "
                                     "does not dial",
    PhoneNumberType.PAGER: "a pager number, not a fax line",
    PhoneNumberType.VOICEMAIL: "a voicemail number, not a fax line",
    PhoneNumberType.UAN: "a universal access number, not a fax line",
}


def _parse_valid(value: str, region: str) -> phonenumbers.PhoneNumber:
    if not isinstance(value, str):
        raise ValueError("not a phone number")
    try:
        number = phonenumbers.parse(value or "", region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return number


def normalize_phone(value: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """The number in E.164 (``+17635550100``); ``ValueError`` when it is not a
    valid phone number (the message does not repeat it)."""
    number = _parse_valid(value, region)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_fax(value: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """The fax number in E.164; ``ValueError`` when it is not a valid phone
    number or not a kind of line a fax may be sent to (``FAX_LINE_TYPES``)."""
    number = _parse_valid(value, region)
    kind = phonenumbers.number_type(number)
    if kind not in FAX_LINE_TYPES:
        raise ValueError(_NOT_A_FAX_LINE.get(kind, "not a fax line (a number of no known type)"))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str) -> str:
    """The address in its normalised form; ``ValueError`` when it is not valid
    (deliverability is not checked: no DNS lookups)."""
    if not isinstance(value, str):
        raise ValueError("not a valid email address")
    one_line(value)  # no CR/LF: an address goes into mail headers
    try:
        return validate_email(value or "", check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValueError("not a valid email address") from None
