"""Phone and fax numbers are written one way, on paper and on the pages: the clinic's
national format for its own country's numbers, the international one for others."""

from __future__ import annotations

import pytest

from refflow.documents.formatting import clinic_region, phone, phone_text


@pytest.mark.parametrize("locale, region", [
    ("en_US", "US"), ("en_GB", "GB"), ("en-GB", "GB"), ("es_US", "US"),
    ("en", "US"), ("", "US"), (None, "US"), ("not a locale!", "US")])
def test_the_clinics_country_comes_from_its_locale(locale, region):
    assert clinic_region(locale) == region


@pytest.mark.parametrize("number, region, shown", [
    ("+17635550198", "US", "(763) 555-0198"),
    ("763 555 0198", "US", "(763) 555-0198"),
    ("+442079460018", "US", "+44 20 7946 0018"),
    ("+442079460018", "GB", "020 7946 0018"),
    ("+17635550198", "GB", "+1 763-555-0198"),
    ("LAKESIDE PT", "US", "LAKESIDE PT"),  # a fax machine's name, as received
    ("office@example.org", "US", "office@example.org"),
    ("555", "US", "555"),  # not a number: as typed, never guessed at
    ("", "US", ""), (None, "US", "")])
def test_a_number_is_written_as_the_clinic_writes_it(number, region, shown):
    assert phone_text(number, region) == shown


def test_paper_says_not_known_for_an_absent_number():
    assert phone(None, "en_US") == "not known"
    assert phone("+17635550198", "en_US") == "(763) 555-0198"
