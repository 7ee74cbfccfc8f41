"""Issue 14, "every malformed input is a 4xx, in linear time": the fault
campaign's findings, each reproduced (SQLite and PostgreSQL).

- ``"npi": null`` crashed the NPI check digit; null is "not given".
- a NUL (or any non-id) in a path id reached the database (PostgreSQL refuses
  NUL): ids are checked by the ``id`` URL converter before any query, so a bad
  one is a 404 in the JSON envelope (API) or the HTML 404 page (web pages).
- N unknown fields took O(N^2) to name; 50,000 are named now (the time is
  measured by bench/intake_errors.py, not here).
- text that cannot be delivered (control characters in names and one-line
  fields), fax numbers that must not be dialled (premium rate, shared cost,
  personal, pager, UAN, voicemail), a number where a date belongs, and the
  referral's own dates in the future are refused with 422 naming the field.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from refflow.db.models import Referral

API = "/api/v1"


def post(client, auth, body):
    return client.post(f"{API}/referrals", json=body, headers=auth)


def assert_error(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    assert response.is_json
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "fields"}
    assert isinstance(error["message"], str) and error["message"]
    if code:
        assert error["code"] == code
    return error


def refused(client, auth, body, field, *, reason_has=None):
    """Posting ``body`` is 422 naming ``field`` (and only it)."""
    error = assert_error(post(client, auth, body), 422, "validation_failed")
    assert set(error["fields"]) == {field}, error
    if reason_has:
        assert reason_has in error["fields"][field], error
    return error


def clinic_today(settings) -> dt.date:
    return dt.datetime.now(ZoneInfo(settings.clinic_timezone)).date()


# -- referrer.npi: null ------------------------------------------------------------

def test_a_null_npi_is_not_given(client, auth, referral_body, db):
    referral_body["referrer"]["npi"] = None
    r = post(client, auth, referral_body)
    assert r.status_code == 202, r.get_json()
    with db.session() as s:
        assert "npi" not in s.get(Referral, r.get_json()["id"]).payload["referrer"]


def test_a_bad_npi_is_still_refused(client, auth, referral_body):
    referral_body["referrer"]["npi"] = "1234567890"
    refused(client, auth, referral_body, "referrer.npi", reason_has="check digit")
    referral_body["referrer"]["npi"] = 1234567893
    refused(client, auth, referral_body, "referrer.npi")


# -- ids in paths ----------------------------------------------------------------------

BAD_IDS = ["%00", "x%00y", "nope", "1", "..%2F..%2Fetc", "%E2%80%AE", "%FF",
           str(uuid.uuid4()) + "%00", str(uuid.uuid4()).upper(), "' OR 1=1 --",
           str(uuid.uuid4()) + "0", "a" * 300]

API_ROUTES = [
    ("GET", "/referrals/{id}"),
    ("GET", "/referrals/{id}/plan"),
    ("GET", "/referrals/{id}/documents"),
    ("GET", "/referrals/{id}/documents/summary.pdf"),
    ("POST", "/referrals/{id}/cancel"),
    ("POST", "/referrals/{id}/approve"),
    ("POST", "/referrals/{id}/reject"),
    ("POST", "/deliveries/{id}/retry"),
]

PAGE_ROUTES = [
    ("GET", "/referrals/{id}"),
    ("GET", "/referrals/{id}/documents/summary.pdf"),
    ("GET", "/referrals/{id}/fax/1.png"),
    ("POST", "/referrals/{id}/approve"),
    ("POST", "/referrals/{id}/reject"),
    ("POST", "/referrals/{id}/cancel"),
    ("POST", "/deliveries/{id}/retry"),
    ("GET", "/portal/referrals/{id}"),
    ("GET", "/portal/referrals/{id}/status"),
    ("GET", "/portal/referrals/{id}/documents/summary.pdf"),
]


def test_a_bad_id_in_an_api_path_is_404_in_the_envelope(client, auth):
    for method, route in API_ROUTES:
        for bad in BAD_IDS:
            path = API + route.format(id=bad)
            r = client.open(path, method=method, headers=auth)
            assert_error(r, 404, "not_found")
            assert "\x00" not in r.get_data(as_text=True), path


def test_a_bad_id_in_a_page_path_is_the_404_page(settings):
    from refflow.app import create_app

    # the form token is checked before routing (a 400 then): off, to reach the route
    client = create_app(settings, {"TESTING": True, "WTF_CSRF_ENABLED": False}).test_client()
    for method, route in PAGE_ROUTES:
        for bad in BAD_IDS:
            path = route.format(id=bad)
            r = client.open(path, method=method, headers={"Accept": "text/html"})
            assert r.status_code == 404, (path, r.status_code)
            assert r.mimetype == "text/html", path


def test_a_well_formed_unknown_id_is_404_and_a_real_one_still_works(client, auth,
                                                                     referral_body):
    rid = post(client, auth, referral_body).get_json()["id"]
    assert client.get(f"{API}/referrals/{rid}", headers=auth).status_code == 200
    assert client.get(f"{API}/referrals/{rid}/documents", headers=auth).status_code == 200
    for route in ("/referrals/{id}", "/referrals/{id}/documents",
                  "/referrals/{id}/documents/summary.pdf"):
        assert_error(client.get(API + route.format(id=uuid.uuid4()), headers=auth), 404)


def test_a_bad_document_name_is_404_in_the_envelope(client, auth, referral_body):
    rid = post(client, auth, referral_body).get_json()["id"]
    for name in ("%00", "summary.pdf%00", "x", "SUMMARY.PDF", "%E2%80%AE"):
        error = assert_error(client.get(f"{API}/referrals/{rid}/documents/{name}",
                                        headers=auth), 404)
        assert error["message"] == "no such document"
    assert_error(client.get(f"{API}/referrals/{rid}/documents/..%2Fsummary.pdf",
                            headers=auth), 404)  # no such route


def test_a_cursor_that_names_no_id_is_400(client, auth):
    import base64
    import json

    for rid in ("\x00", "nope", 5):
        raw = json.dumps(["2026-01-01T00:00:00+00:00", rid]).encode()
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        error = assert_error(client.get(f"{API}/referrals?cursor={cursor}", headers=auth), 400)
        assert error["fields"] == {"cursor": "invalid"}
    assert_error(client.get(f"{API}/referrals?cursor=%00", headers=auth), 400)


# -- unknown fields, many ------------------------------------------------------------------

def test_fifty_thousand_unknown_fields_are_each_named(client, auth, referral_body, db):
    body = copy.deepcopy(referral_body)
    unknown = [f"x{i:05d}" for i in range(50_000)]
    body.update(dict.fromkeys(unknown, 1))
    body["clinical"]["shoe_size"] = 7
    error = assert_error(post(client, auth, body), 422, "validation_failed")
    assert error["fields"] == {**dict.fromkeys(unknown, "unknown field"),
                               "clinical.shoe_size": "unknown field"}
    # the message names some and counts the rest; the fields name all
    assert error["message"].startswith("unknown field(s): ")
    assert len(error["message"]) < 1000
    assert "more" in error["message"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Referral)) == 0


def test_unknown_fields_next_to_other_errors_are_all_named(client, auth, referral_body):
    body = copy.deepcopy(referral_body)
    body.update({"a": 1, "b": 2})
    body["patient"]["sex"] = "f"
    body["clinical"]["medications"] = [{"name": "x", "y": 1}]
    error = assert_error(post(client, auth, body), 422)
    assert error["fields"] == {"a": "unknown field", "b": "unknown field",
                               "clinical.medications.0.y": "unknown field",
                               "patient.sex": error["fields"]["patient.sex"]}


# -- text that cannot be delivered -------------------------------------------------------

ONE_LINE = {
    "patient.given_name": lambda b, v: b["patient"].update(given_name="Ann" + v + "x"),
    "patient.family_name": lambda b, v: b["patient"].update(family_name="Lee" + v + "x"),
    "referrer.name": lambda b, v: b["referrer"].update(name="Dr" + v + "Patel"),
    "external_id": lambda b, v: b.update(external_id="EHR" + v + "1"),
    "goals.1": lambda b, v: b["goals"].__setitem__(1, "garden" + v + "ing"),
    "clinical.medications.1.name": lambda b, v: b["clinical"]["medications"][1].update(
        name="pred" + v + "nisone"),
    "clinical.medications.0": lambda b, v: b["clinical"]["medications"].__setitem__(
        0, "alen" + v + "dronate"),
    "clinical.conditions.0": lambda b, v: b["clinical"]["conditions"].__setitem__(
        0, "hyper" + v + "tension"),
    "clinical.pain.site": lambda b, v: b["clinical"]["pain"].update(site="ba" + v + "ck"),
}


@pytest.mark.parametrize("char", ["\r\n", "\n", "\r", "\x1b", "\x07", "\x7f", "\x85",
                                  "\u2028", "\t"])
def test_control_characters_in_one_line_text_are_refused(client, auth, referral_body, char):
    for field, mutate in ONE_LINE.items():
        body = copy.deepcopy(referral_body)
        mutate(body, char)
        refused(client, auth, body, field, reason_has="control character")


def test_free_text_keeps_its_lines_but_not_other_control_characters(client, auth,
                                                                     referral_body, db):
    body = copy.deepcopy(referral_body)
    body["notes"] = "line one\r\nline two\n\tindented"
    body["clinical"]["exercise_history"] = "walks\nswims"
    r = post(client, auth, body)
    assert r.status_code == 202, r.get_json()
    with db.session() as s:
        assert s.get(Referral, r.get_json()["id"]).payload["notes"] == body["notes"]
    for field, where in (("notes", body), ("diagnosis.text", body["diagnosis"])):
        bad = copy.deepcopy(referral_body)
        target = bad if field == "notes" else bad["diagnosis"]
        target[field.split(".")[-1]] = "text\x1b[31mred"
        refused(client, auth, bad, field, reason_has="control character")


@pytest.mark.parametrize("field", ["patient.email", "referrer.email"])
def test_header_injection_in_an_email_address_is_refused(client, auth, referral_body, field):
    section, key = field.split(".")
    for value in ("ann@example.org\r\nBcc: all@example.org", "ann\n@example.org",
                  "ann@exa\x00mple.org"):
        body = copy.deepcopy(referral_body)
        body[section][key] = value
        error = assert_error(post(client, auth, body), 422)
        assert set(error["fields"]) == {field}


# -- fax numbers that must not be dialled ----------------------------------------------------

@pytest.mark.parametrize("number, reason", [
    ("+1 900 200 1234", "premium-rate"),
    ("+44 909 879 0000", "premium-rate"),
    ("+44 70 1234 5678", "personal"),
    ("+1 500 555 0100", "personal"),
    ("+44 300 123 4567", "not a fax line"),
])
def test_a_fax_number_that_must_not_be_dialled_is_refused(client, auth, referral_body,
                                                          number, reason):
    referral_body["referrer"]["fax"] = number
    error = refused(client, auth, referral_body, "referrer.fax", reason_has=reason)
    assert number not in error["message"] and "2001234" not in str(error)


@pytest.mark.parametrize("number, e164", [
    ("+1 763 555 0198", "+17635550198"),  # fixed line or mobile (NANP)
    ("+1 800 225 5288", "+18002255288"),  # toll free
    ("+44 20 7946 0018", "+442079460018"),  # fixed line
    ("+44 56 1234 5678", "+445612345678"),  # VoIP (internet fax services)
])
def test_fax_numbers_a_fax_can_reach_are_accepted(client, auth, referral_body, db,
                                                  number, e164):
    referral_body["referrer"]["fax"] = number
    r = post(client, auth, referral_body)
    assert r.status_code == 202, r.get_json()
    with db.session() as s:
        assert s.get(Referral, r.get_json()["id"]).payload["referrer"]["fax"] == e164


def test_the_referrers_phone_is_not_held_to_the_fax_rules(client, auth, referral_body):
    referral_body["referrer"]["phone"] = "+1 800 225 5288"
    assert post(client, auth, referral_body).status_code == 202


def test_normalize_fax_is_the_one_fax_check():
    from refflow.intake.contact import normalize_fax
    from refflow.plugins.channels.base import PermanentChannelError
    from refflow.plugins.channels.fax import normalize_fax_number

    assert normalize_fax("(763) 555-0198") == "+17635550198"
    for bad in ("+1 900 200 1234", "555", "", "+44 70 1234 5678"):
        with pytest.raises(ValueError):
            normalize_fax(bad)
        with pytest.raises(PermanentChannelError):
            normalize_fax_number(bad)
    assert normalize_fax_number("+1 800 225 5288") == "+18002255288"


def test_a_practice_fax_must_be_a_fax_line(db):
    from refflow.accounts.practices import AccountError, create_practice

    with db.session() as s, pytest.raises(AccountError, match="--fax: .*premium-rate"):
        create_practice(s, "Premium Practice", fax="+1 900 200 1234")
    with db.session() as s:
        assert create_practice(s, "Fine Practice", fax="+1 763 555 0101").fax == "+17635550101"


# -- dates -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, 1, -86400, 1.5, "0", "1700000000", True, [], {}])
def test_a_number_is_not_a_birth_date(client, auth, referral_body, value):
    referral_body["patient"]["birth_date"] = value
    refused(client, auth, referral_body, "patient.birth_date")


def test_the_referrals_own_dates_are_not_in_the_future(client, auth, referral_body, settings):
    tomorrow = (clinic_today(settings) + dt.timedelta(days=1)).isoformat()
    cases = {
        "clinical.fractures.0.date": lambda b: b["clinical"]["fractures"][0].update(
            date=tomorrow),
        "clinical.pain.since": lambda b: b["clinical"]["pain"].update(since=tomorrow),
        "clinical.medications.1.since": lambda b: b["clinical"]["medications"][1].update(
            since=tomorrow),
        "patient.birth_date": lambda b: b["patient"].update(birth_date=tomorrow),
    }
    for field, mutate in cases.items():
        body = copy.deepcopy(referral_body)
        mutate(body)
        refused(client, auth, body, field, reason_has="future")
    body = copy.deepcopy(referral_body)
    body["clinical"]["fractures"][0]["date"] = "2020-02-30"
    refused(client, auth, body, "clinical.fractures.0.date")
    # today itself is fine
    body = copy.deepcopy(referral_body)
    body["clinical"]["pain"]["since"] = clinic_today(settings).isoformat()
    assert post(client, auth, body).status_code == 202


def test_today_is_the_clinics_today(referral_body):
    """The limit is today in the clinic's timezone, which the intake passes in."""
    from refflow.intake.validation import InvalidReferral, parse_referral

    day = dt.date(2026, 3, 10)
    body = copy.deepcopy(referral_body)
    body["clinical"]["pain"]["since"] = day.isoformat()
    body["clinical"]["fractures"][0]["date"] = "2026-01-05"
    assert parse_referral(body, today=day).clinical.pain.since == day
    with pytest.raises(InvalidReferral) as exc:
        parse_referral(body, today=day - dt.timedelta(days=1))
    assert set(exc.value.fields) == {"clinical.pain.since"}


def test_every_id_variable_of_every_route_takes_only_a_refflow_id(app):
    """Each ``<..._id>`` of every route (those of later routes too) matches a
    refflow id and nothing else, while the rule keeps its plain text (the
    metrics labels and the OpenAPI paths)."""
    import re

    from werkzeug.exceptions import MethodNotAllowed, NotFound

    adapter = app.url_map.bind("localhost")
    checked = 0
    for rule in app.url_map.iter_rules():
        ids = [a for a in rule.arguments if a.endswith("_id")]
        if not ids:
            continue
        assert all(f"<{a}>" in rule.rule for a in ids), rule.rule  # no converter in the text
        method = sorted(rule.methods - {"HEAD", "OPTIONS"})[0]
        values = {a: "1" if a == "page" else "summary.pdf" for a in rule.arguments}
        good = {**values, **{a: str(uuid.uuid4()) for a in ids}}
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: good[m.group(1)], rule.rule)
        assert adapter.match(path, method=method)[0] == rule.endpoint, path
        for a in ids:
            for bad in ("\x00", "nope", good[a].upper(), good[a] + "\x00"):
                path = re.sub(r"<(?:[^:>]+:)?([^>]+)>",
                              lambda m, a=a, bad=bad: bad if m.group(1) == a else good[m.group(1)],
                              rule.rule)
                try:
                    endpoint = adapter.match(path, method=method)[0]
                except (NotFound, MethodNotAllowed):
                    continue
                assert endpoint != rule.endpoint, path
        checked += 1
    assert checked >= 15
