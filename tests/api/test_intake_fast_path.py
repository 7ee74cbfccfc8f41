"""The common intake request is served in front of Flask (refflow.intake.fast_path):
its answer must be the one the Flask view gives, and a request it hands on to
Flask must be counted once, answered by Flask, and written at most once."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from refflow.app import create_app
from refflow.db.models import OutboxMessage, Referral

pytestmark = pytest.mark.parametrize("settings", ["postgresql"], indirect=True)

VIEW = "referrals_api.create_referral"


def _forbid_flask_view(app):
    def view():  # the fast path must answer without it
        raise AssertionError("the Flask view ran")

    original = app.view_functions[VIEW]
    app.view_functions[VIEW] = view
    return original


def _counted(client, status: int) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    match = re.search(r'refflow_http_requests_total\{endpoint="/api/v1/referrals",'
                      rf'method="POST",status="{status}"\}} ([0-9.e+]+)', text)
    return float(match.group(1)) if match else 0.0


def test_the_common_request_gets_the_flask_views_answer(app, client, auth, referral_body, db):
    # through Flask: a request with a cookie is never served in front of it
    through_flask = client.post("/api/v1/referrals", json=referral_body,
                                headers={**auth, "Cookie": "unrelated=1"})
    original = _forbid_flask_view(app)
    served = client.post("/api/v1/referrals", json=referral_body,
                         headers={**auth, "X-Request-Id": "fastpath0001"})
    app.view_functions[VIEW] = original

    assert served.status_code == through_flask.status_code == 202
    assert served.headers["X-Request-Id"] == "fastpath0001"
    skip = {"Location", "Content-Length", "X-Request-Id"}
    assert {k: v for k, v in served.headers.items() if k not in skip} == \
        {k: v for k, v in through_flask.headers.items() if k not in skip}
    body, flask_body = served.get_json(), through_flask.get_json()
    assert set(body) == set(flask_body) and body["status"] == "received"
    assert served.headers["Location"] == body["links"]["self"] == f"/api/v1/referrals/{body['id']}"
    assert served.get_data(as_text=True).endswith("}\n")
    with db.session() as session:
        stored = session.get(Referral, body["id"])
        assert stored.status == "received" and stored.request_id == "fastpath0001"
        assert session.scalar(select(func.count()).select_from(OutboxMessage)
                              .where(OutboxMessage.args["referral_id"].as_string()
                                     == body["id"])) == 1
    # the same answer over TLS carries HSTS, as every other response does
    original = _forbid_flask_view(app)
    secure = client.post("/api/v1/referrals", json=referral_body, headers=auth,
                         base_url="https://clinic.example")
    app.view_functions[VIEW] = original
    assert secure.status_code == 202
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_a_flagged_referral_is_served_with_its_problems(app, client, auth, referral_body, db):
    referral_body["diagnosis"] = {"codes": ["I10"], "text": "hypertension"}
    original = _forbid_flask_view(app)
    response = client.post("/api/v1/referrals", json=referral_body, headers=auth)
    app.view_functions[VIEW] = original
    assert response.status_code == 202
    assert [p["code"] for p in response.get_json()["problems"]] == ["diagnosis_out_of_scope"]
    with db.session() as session:
        assert session.get(Referral, response.get_json()["id"]).flagged


def test_a_rejected_referral_is_handed_to_flask(client, auth, referral_body, db):
    referral_body["patient"]["birth_date"] = "2015-01-01"
    response = client.post("/api/v1/referrals", json=referral_body, headers=auth)
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "rejected"
    assert [p["code"] for p in body["problems"]] == ["out_of_scope_age"]
    with db.session() as session:
        assert session.get(Referral, body["id"]).status == "rejected"


def test_handed_on_requests_are_counted_once_and_answered_by_flask(settings, make_practice,
                                                                   referral_body):
    app = create_app(settings.with_overrides(intake_rate_limit="3/minute"), {"TESTING": True})
    client = app.test_client()
    _, key = make_practice()
    auth = {"Authorization": f"Bearer {key}"}
    before = _counted(client, 422)

    bad = dict(referral_body, urgency="whenever")
    for _ in range(2):
        refused = client.post("/api/v1/referrals", json=bad, headers=auth)
        assert refused.status_code == 422
        assert refused.get_json()["error"]["fields"] == {"urgency": refused.get_json()
                                                         ["error"]["fields"]["urgency"]}
    assert _counted(client, 422) == before + 2  # one count per request, not two
    assert client.post("/api/v1/referrals", json=referral_body, headers=auth).status_code == 202
    limited = client.post("/api/v1/referrals", json=referral_body, headers=auth)
    assert limited.status_code == 429  # the fourth request: each counted once
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.get_json()["error"]["code"] == "rate_limited"


def test_unknown_key_and_replayed_idempotency_key_are_answered_by_flask(client, auth,
                                                                        referral_body, db):
    unknown = client.post("/api/v1/referrals", json=referral_body,
                          headers={"Authorization": "Bearer rf_not_a_key"})
    assert unknown.status_code == 401
    assert unknown.headers["WWW-Authenticate"].startswith("Bearer")
    first = client.post("/api/v1/referrals", json=referral_body,
                        headers={**auth, "Idempotency-Key": "order-77"})
    again = client.post("/api/v1/referrals", json=referral_body,
                        headers={**auth, "Idempotency-Key": "order-77"})
    assert first.status_code == again.status_code == 202
    assert again.get_json() == first.get_json()
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 1


def test_behind_a_trusted_proxy_the_client_address_and_tls_are_the_proxys_word(
        settings, make_practice, referral_body, monkeypatch, db):
    from refflow.db.models import AuditEntry

    monkeypatch.setenv("REFFLOW_PROXY_HOPS", "1")
    app = create_app(settings, {"TESTING": True})
    _, key = make_practice()
    original = _forbid_flask_view(app)
    response = app.test_client().post(
        "/api/v1/referrals", json=referral_body,
        headers={"Authorization": f"Bearer {key}", "X-Forwarded-Proto": "https",
                 "X-Forwarded-For": "203.0.113.77"})
    app.view_functions[VIEW] = original
    assert response.status_code == 202
    assert "Strict-Transport-Security" in response.headers
    with db.session() as session:
        entry = session.scalar(select(AuditEntry).where(
            AuditEntry.referral_id == response.get_json()["id"]))
        assert entry.ip == "203.0.113.77"


def test_a_connection_the_server_closed_while_idle_is_replaced_without_failing_a_request(
        app, client, auth, referral_body, db):
    """The fast path runs its statement on a connection its thread keeps
    outside the pool; like a pooled one, a connection the server closed while
    it sat idle (a restart, an operator ending sessions) is replaced before
    the next request uses it, instead of failing that request."""
    import select as select_io

    from sqlalchemy import text

    first = client.post("/api/v1/referrals", json=referral_body, headers=auth)
    assert first.status_code == 202
    conn, _cursor = db.thread_connections.get()
    kept_pid = conn.info.backend_pid
    with db.engine.connect() as admin:
        assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": kept_pid}).scalar()
    select_io.select([conn.pgconn.socket], [], [], 5)  # the server's goodbye has arrived
    second = client.post("/api/v1/referrals", json=referral_body, headers=auth)
    assert second.status_code == 202, second.get_json()
    replacement, _cursor = db.thread_connections.get()
    assert replacement.info.backend_pid != kept_pid
    with db.session() as session:
        assert session.get(Referral, second.get_json()["id"]) is not None
