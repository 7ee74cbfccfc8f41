"""Fuzzing the inputs (hypothesis): random JSON, and the design example with
random parts replaced, removed or added, into POST /api/v1/referrals; random
ids and names in every path that takes one. Whatever comes in, the answer is
never a 5xx, and every API error is the JSON envelope.

Through the Flask test client, mostly on SQLite, a share on PostgreSQL (which
refuses text SQLite takes: NUL, lone surrogates). Derandomized, so CI runs the
same cases each time; about 2,600 requests in all.
"""

from __future__ import annotations

import copy
import json
import uuid
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from refflow.app import create_app

API_STATUSES = {400, 401, 403, 404, 405, 409, 413, 415, 422}
STAFF = "fuzz-staff@clinic.example"
PASSWORD = "correct horse battery staple"


def fuzz_settings(n: int):
    return hsettings(max_examples=n, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow,
                                            HealthCheck.data_too_large])


def assert_envelope(response):
    assert response.is_json, (response.status_code, response.get_data()[:300])
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "fields"}
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in error["fields"].items())
    return error


# -- values ---------------------------------------------------------------------------

TRICKY = [
    None, True, False, 0, -1, 1, 10, 2**31, 2**63, -(2**63), 10**40, 0.5, -0.0, 1e308,
    float("nan"), float("inf"), float("-inf"),
    "", " ", "\x00", "a\x00b", "\r\n", "Ann\r\nBcc: x@example.org", "\x1b[31m", "\t",
    "\ud800", "x\udfffy", "\u2028", "\u202e", "\ufeff", "😀", "a" * 5000,
    "2026-01-01", "1951-03-02", "9999-12-31", "0001-01-01", "2999-01-01", "1889-12-31",
    "2026-02-30", "2026-01-01T00:00:00", "2026-01-01T05:00:00Z", "0", "1700000000",
    "+1 900 200 1234", "+1 763 555 0198", "+44 70 1234 5678", "+1 800 225 5288", "555",
    "1234567893", "1234567890", "M81.0", "osteoporosis", "none", "nil", "female",
    "vertebral", "urgent", "ann@example.org", "ann@@example", "en", "EN-us",
    [], {}, [None], [""], {"": None}, {"name": None}, {"site": "hip"}, ["none"],
    [{"name": "prednisone", "since": "2999-01-01"}],
]
KEYS = st.one_of(
    st.sampled_from(["name", "date", "since", "site", "score", "codes", "text", "npi", "fax",
                     "email", "phone", "birth_date", "given_name", "", "\x00", "a.b",
                     "Medication", "str", "constrained-str", "__proto__", "0"]),
    st.text(max_size=12))
LEAVES = st.one_of(
    st.sampled_from(TRICKY), st.none(), st.booleans(), st.integers(),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.dates().map(lambda d: d.isoformat()))
VALUES = st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12)


def paths(node, prefix=()):
    """Every path into a JSON value (dict keys and list indices)."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, prefix + (i,))


def at(node, path):
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated(draw, base):
    """``base`` with one to four parts replaced, removed or added."""
    body = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(list(paths(body))[1:]))
        parent, last = at(body, path[:-1]), path[-1]
        op = draw(st.sampled_from(["set", "set", "set", "delete", "add"]))
        if op == "set":
            parent[last] = copy.deepcopy(draw(VALUES))
        elif op == "delete":
            del parent[last]
        else:
            node = parent[last]
            if isinstance(node, dict):
                node[draw(KEYS)] = copy.deepcopy(draw(VALUES))
            elif isinstance(node, list):
                node.append(copy.deepcopy(draw(VALUES)))
            else:
                parent[last] = copy.deepcopy(draw(VALUES))
    return body


# -- the app ------------------------------------------------------------------------------

@pytest.fixture
def fuzz_client(settings):
    """The app without the intake's rate limit (thousands of requests a minute)."""
    app = create_app(settings.with_overrides(intake_rate_limit="1000000/minute"),
                     {"TESTING": True})
    return app.test_client()


def post_raw(client, auth, body):
    data = json.dumps(body)  # NaN and Infinity as Python writes them; surrogates escaped
    return client.post("/api/v1/referrals", data=data,
                       headers={**auth, "Content-Type": "application/json"})


def check_intake(client, auth, body):
    response = post_raw(client, auth, body)
    status = response.status_code
    assert status < 500, (status, response.get_data(as_text=True)[:500])
    if status == 202:
        rid = response.get_json()["id"]
        detail = client.get(f"/api/v1/referrals/{rid}", headers=auth)
        assert detail.status_code == 200
        json.dumps(detail.get_json(), allow_nan=False)  # what was stored is plain JSON
    else:
        assert status in API_STATUSES, status
        assert_envelope(response)
    return status


# -- POST /api/v1/referrals ---------------------------------------------------------------

@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_random_json_is_never_a_server_error(fuzz_client, auth):
    @fuzz_settings(500)
    @given(body=VALUES)
    def run(body):
        check_intake(fuzz_client, auth, body)

    run()


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_a_mutated_referral_is_never_a_server_error(fuzz_client, auth, referral_body):
    @fuzz_settings(1400)
    @given(body=mutated(referral_body))
    def run(body):
        check_intake(fuzz_client, auth, body)

    run()


@pytest.mark.parametrize("settings", ["postgresql"], indirect=True)
def test_a_mutated_referral_is_never_a_server_error_on_postgresql(fuzz_client, auth,
                                                                  referral_body):
    @fuzz_settings(300)
    @given(body=mutated(referral_body))
    def run(body):
        check_intake(fuzz_client, auth, body)

    run()


# -- ids and names in paths ------------------------------------------------------------------

API_ROUTES = [
    ("GET", "/api/v1/referrals/{id}"),
    ("GET", "/api/v1/referrals/{id}/plan"),
    ("GET", "/api/v1/referrals/{id}/documents"),
    ("GET", "/api/v1/referrals/{id}/documents/{name}"),
    ("POST", "/api/v1/referrals/{id}/cancel"),
    ("POST", "/api/v1/referrals/{id}/approve"),
    ("POST", "/api/v1/referrals/{id}/reject"),
    ("POST", "/api/v1/deliveries/{id}/retry"),
    ("GET", "/api/v1/referrals?cursor={id}"),
    ("GET", "/api/v1/referrals?status={name}&limit={id}"),
    ("GET", "/api/v1/faxes/{id}"),
    ("GET", "/api/v1/faxes/{id}/pages/{name}.png"),
    ("POST", "/api/v1/faxes/{id}/archive"),
    ("GET", "/api/v1/faxes?cursor={id}&status={name}"),
    ("POST", "/api/v1/fax/inbound/{name}"),
]
PAGE_ROUTES = [
    ("GET", "/referrals/{id}"),
    ("GET", "/referrals/{id}/documents/{name}"),
    ("GET", "/referrals/{id}/fax/1.png"),
    ("POST", "/referrals/{id}/approve"),
    ("POST", "/referrals/{id}/reject"),
    ("POST", "/referrals/{id}/cancel"),
    ("POST", "/deliveries/{id}/retry"),
    ("GET", "/portal/referrals/{id}"),
    ("GET", "/portal/referrals/{id}/status"),
    ("GET", "/portal/referrals/{id}/documents/{name}"),
]
SEGMENTS = st.one_of(
    st.sampled_from(["\x00", "x\x00", "nope", "new", "..", ".", "' OR 1=1 --", "%",
                     "summary.pdf", "fax.tiff", "handout.pdf", "received", "0", "-1", "a" * 400]),
    st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: str(u) + "\x00"), st.text(max_size=40))


@pytest.fixture
def fuzz_site(settings, db, practice):
    """A test client signed in as staff (forms without their token: the token
    is tested elsewhere) and a referral of the practice."""
    from refflow.accounts.users import create_user

    with db.session() as s:
        create_user(s, STAFF, PASSWORD, role="staff")
    app = create_app(settings, {"TESTING": True, "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    auth = {"Authorization": f"Bearer {practice[1]}"}
    assert client.post("/login", data={"email": STAFF, "password": PASSWORD}).status_code == 302
    return client, auth


def check_path(client, auth, method, route, segment, name, as_staff):
    path = route.format(id=quote(segment, safe=""),
                        name=quote(name, safe=""))
    headers = {} if as_staff else auth
    response = client.open(path, method=method, headers={**headers, "Accept": "text/html"})
    assert response.status_code < 500, (path, response.status_code)
    if path.startswith("/api/") and response.status_code >= 400:
        assert response.status_code in API_STATUSES
        assert_envelope(response)


def run_paths(client, auth, n):
    @fuzz_settings(n)
    @given(route=st.sampled_from(API_ROUTES + PAGE_ROUTES), segment=SEGMENTS,
           name=SEGMENTS, as_staff=st.booleans())
    def run(route, segment, name, as_staff):
        check_path(client, auth, *route, segment, name, as_staff)

    run()


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_any_path_id_is_never_a_server_error(fuzz_site):
    run_paths(*fuzz_site, 400)


@pytest.mark.parametrize("settings", ["postgresql"], indirect=True)
def test_any_path_id_is_never_a_server_error_on_postgresql(fuzz_site):
    run_paths(*fuzz_site, 150)


@pytest.mark.parametrize("settings", ["sqlite", "postgresql"], indirect=True)
def test_every_id_route_answers_a_real_id(fuzz_site, referral_body):
    """The converter lets real ids through: each route, a real referral."""
    client, auth = fuzz_site
    rid = post_raw(client, auth, referral_body).get_json()["id"]
    for method, route in API_ROUTES[:8] + PAGE_ROUTES:
        if "deliveries" in route:
            continue
        for as_staff in (True, False):
            check_path(client, auth, method, route, rid, "summary.pdf", as_staff)
    assert client.get(f"/api/v1/referrals/{rid}", headers=auth).status_code == 200
    assert client.get(f"/referrals/{rid}").status_code == 200
    assert client.get(f"/referrals/{uuid.uuid4()}").status_code == 404
