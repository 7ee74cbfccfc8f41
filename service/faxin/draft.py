"""refflow's referral form, read or corrected by a person, as a referral payload.

``referral_payload(values)`` maps the form's field names
(``documents.referral_form.FIELDS``) to the JSON the API takes, so a draft
made from a fax goes through exactly the API's validation
(``refflow.intake.validation``).
"""

from __future__ import annotations

from collections.abc import Mapping


def referral_payload(values: Mapping[str, str]) -> dict:
    """The referral JSON for the form's values (empty values are left out)."""
    raise NotImplementedError("issue 17: the form's fields as a referral")
