"""The referral API against SQLite and PostgreSQL (every test runs on both)."""

from __future__ import annotations

import copy
import datetime as dt

from sqlalchemy import func, select

from refflow.db.models import AuditEntry, OutboxMessage, Referral


def post(client, auth, body, **headers):
    return client.post("/api/v1/referrals", json=body, headers={**auth, **headers})


def assert_error(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "fields"}
    assert isinstance(error["message"], str) and error["message"]
    if code:
        assert error["code"] == code
    return error


def test_accepted_referral_is_stored_with_timeline_and_outbox(client, auth, referral_body, db):
    response = post(client, auth, referral_body)
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "received"
    assert body["external_id"] == "EHR-12345"
    assert body["links"]["self"] == f"/api/v1/referrals/{body['id']}"
    assert response.headers["Location"] == body["links"]["self"]

    detail = client.get(body["links"]["self"], headers=auth).get_json()
    assert detail["status"] == "received"
    assert [(e["from"], e["to"]) for e in detail["timeline"]] == [(None, "received")]
    assert detail["timeline"][0]["actor"].startswith("apikey:")
    assert detail["deliveries"] == []

    with db.session() as session:
        referral = session.get(Referral, body["id"])
        # normalised on the way in: phones to E.164
        assert referral.payload["patient"]["phone"] == "+17635550100"
        assert referral.payload["referrer"]["fax"] == "+17635550198"
        outbox = session.scalars(select(OutboxMessage)).all()
        # The request id goes with the message, so the worker's log lines carry it.
        assert [(m.task, m.args, m.sent_at) for m in outbox] == [
            ("refflow.build_plan", {"referral_id": body["id"],
                                    "request_id": response.headers["X-Request-Id"]}, None)]
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
        assert actions == ["referral.create", "referral.read"]


def test_unknown_field_is_rejected_naming_it(client, auth, referral_body):
    referral_body["patient"]["middle_name"] = "Q"
    referral_body["clinical"]["shoe_size"] = 7
    error = assert_error(post(client, auth, referral_body), 422, "validation_failed")
    assert error["fields"] == {"patient.middle_name": "unknown field",
                               "clinical.shoe_size": "unknown field"}
    assert "patient.middle_name" in error["message"]


def test_field_rules(client, auth, referral_body):
    cases = {
        "patient.birth_date": lambda b: b["patient"].update(
            birth_date=(dt.date.today() + dt.timedelta(days=3)).isoformat()),
        "patient.phone": lambda b: b["patient"].update(phone="555"),
        "referrer.fax": lambda b: b["referrer"].update(fax="not a number"),
        "patient.email": lambda b: b["patient"].update(email="ann@@example"),
        "diagnosis.codes.0": lambda b: b["diagnosis"].update(codes=["osteoporosis"]),
        "patient.given_name": lambda b: b["patient"].pop("given_name"),
        "clinical.fractures.0.site": lambda b: b["clinical"]["fractures"][0].update(site="knee"),
    }
    for field, mutate in cases.items():
        body = copy.deepcopy(referral_body)
        mutate(body)
        error = assert_error(post(client, auth, body), 422)
        assert field in error["fields"], (field, error)
        # never echo the submitted value back (it may be patient data)
        assert "not a number" not in str(error) and "ann@@" not in str(error)


def test_diagnosis_needs_a_code_or_text(client, auth, referral_body):
    referral_body["diagnosis"] = {"codes": []}
    error = assert_error(post(client, auth, referral_body), 422)
    assert "diagnosis" in error["fields"]


def test_malformed_json_wrong_type_and_oversized_body(client, auth, app, referral_body):
    r = client.post("/api/v1/referrals", data="{not json", headers={
        **auth, "Content-Type": "application/json"})
    assert_error(r, 400, "malformed_json")
    r = client.post("/api/v1/referrals", data="a=b", headers={
        **auth, "Content-Type": "application/x-www-form-urlencoded"})
    assert_error(r, 415, "unsupported_media_type")
    limit = app.extensions["refflow.settings"].max_body_bytes
    referral_body["notes"] = "x" * 3000
    big = {**referral_body, "goals": ["g" * 150] * 20}
    import json

    payload = json.dumps(big).encode() + b" " * (limit + 1)
    r = client.post("/api/v1/referrals", data=payload, headers={
        **auth, "Content-Type": "application/json"})
    assert_error(r, 413, "payload_too_large")


def test_json_nested_too_deep_is_malformed_not_a_server_error(client, auth, referral_body):
    import json

    deep = "[" * 100_000 + "]" * 100_000
    r = client.post("/api/v1/referrals", data=deep, headers={
        **auth, "Content-Type": "application/json"})
    assert_error(r, 400, "malformed_json")
    nested = json.dumps({**referral_body, "x": None}).replace(
        "null", "[" * 5000 + "]" * 5000)
    r = client.post("/api/v1/referrals", data=nested, headers={
        **auth, "Content-Type": "application/json"})
    assert r.status_code in (400, 422) and r.status_code < 500, r.get_json()


def test_a_nul_character_in_text_is_422_naming_the_field_and_stores_nothing(
        client, auth, referral_body, db):
    """No database column takes a NUL character (PostgreSQL refuses it in text
    and JSON): the request is refused naming the field, on either database."""
    body = copy.deepcopy(referral_body)
    body["patient"]["given_name"] = "Ann\x00x"
    body["notes"] = "a\x00b"
    r = client.post("/api/v1/referrals", json=body, headers=auth)
    error = assert_error(r, 422, "validation_failed")
    assert set(error["fields"]) == {"patient.given_name", "notes"}
    assert "Ann" not in r.get_data(as_text=True)
    # an escaped backslash followed by "u0000" is ordinary text
    body = copy.deepcopy(referral_body)
    body["notes"] = "path C:\\u0000\\file"
    assert client.post("/api/v1/referrals", json=body, headers=auth).status_code == 202
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 1


def test_authentication(client, referral_body, practice, db):
    assert_error(client.post("/api/v1/referrals", json=referral_body), 401, "unauthorized")
    r = client.post("/api/v1/referrals", json=referral_body,
                    headers={"Authorization": "Bearer rf_00000000_nope"})
    assert_error(r, 401)
    r = client.get("/api/v1/referrals", headers={"Authorization": "Basic abc"})
    assert_error(r, 401)
    assert "WWW-Authenticate" in r.headers


def test_revoked_key_is_refused(client, referral_body, practice, db, caplog):
    from refflow.accounts.practices import revoke_key

    key = practice[1]
    auth = {"Authorization": f"Bearer {key}"}
    assert post(client, auth, referral_body).status_code == 202
    with db.session() as session:
        revoke_key(session, key.split("_")[1])
    with caplog.at_level("WARNING", logger="refflow.auth"):
        assert_error(post(client, auth, referral_body), 401)
        assert_error(client.get("/api/v1/referrals", headers=auth), 401)
    # the operator's log records each refusal by the key's public prefix, never the secret
    refusals = [r.getMessage() for r in caplog.records if r.name == "refflow.auth"]
    assert refusals == [f"refused API key {key.split('_')[1]} from 127.0.0.1: "
                        "unknown or revoked"] * 2
    assert not any(key.split("_", 2)[2] in m for m in refusals)


def test_a_practice_never_sees_another_practices_referral(client, referral_body, make_practice):
    _, key_a = make_practice("Practice A")
    _, key_b = make_practice("Practice B")
    a = {"Authorization": f"Bearer {key_a}"}
    b = {"Authorization": f"Bearer {key_b}"}
    rid = post(client, a, referral_body).get_json()["id"]

    for path in (f"/api/v1/referrals/{rid}", f"/api/v1/referrals/{rid}/plan",
                 f"/api/v1/referrals/{rid}/documents",
                 f"/api/v1/referrals/{rid}/documents/handout.pdf"):
        assert_error(client.get(path, headers=b), 404, "not_found")
    assert_error(client.post(f"/api/v1/referrals/{rid}/cancel", headers=b), 404)
    assert client.get("/api/v1/referrals", headers=b).get_json()["items"] == []
    # …and A still can, and its referral was not cancelled by B
    assert client.get(f"/api/v1/referrals/{rid}", headers=a).get_json()["status"] == "received"
    assert [i["id"] for i in client.get("/api/v1/referrals", headers=a).get_json()["items"]] \
        == [rid]


def test_idempotency_key_same_body_same_answer(client, auth, referral_body, db):
    first = post(client, auth, referral_body, **{"Idempotency-Key": "order-1"})
    again = post(client, auth, referral_body, **{"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 202
    assert first.get_json() == again.get_json()
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 1


def test_idempotency_key_different_body_is_422(client, auth, referral_body):
    post(client, auth, referral_body, **{"Idempotency-Key": "order-2"})
    changed = copy.deepcopy(referral_body)
    changed["urgency"] = "urgent"
    error = assert_error(post(client, auth, changed, **{"Idempotency-Key": "order-2"}), 422,
                         "idempotency_key_reused")
    assert "different" in error["message"]


def test_idempotency_keys_are_per_practice(client, referral_body, make_practice):
    _, key_a = make_practice()
    _, key_b = make_practice()
    ra = post(client, {"Authorization": f"Bearer {key_a}"}, referral_body,
              **{"Idempotency-Key": "shared"})
    rb = post(client, {"Authorization": f"Bearer {key_b}"}, referral_body,
              **{"Idempotency-Key": "shared"})
    assert ra.status_code == rb.status_code == 202
    assert ra.get_json()["id"] != rb.get_json()["id"]


def test_bad_idempotency_key(client, auth, referral_body):
    assert_error(post(client, auth, referral_body, **{"Idempotency-Key": "k" * 300}), 400,
                 "invalid_idempotency_key")


def test_cancel_and_cancel_again_conflicts(client, auth, referral_body):
    rid = post(client, auth, referral_body).get_json()["id"]
    r = client.post(f"/api/v1/referrals/{rid}/cancel", json={"reason": "patient moved"},
                    headers=auth)
    assert r.status_code == 200 and r.get_json()["status"] == "cancelled"
    error = assert_error(client.post(f"/api/v1/referrals/{rid}/cancel", headers=auth), 409,
                         "invalid_state")
    assert "cancelled" in error["message"]
    timeline = client.get(f"/api/v1/referrals/{rid}", headers=auth).get_json()["timeline"]
    assert [(e["from"], e["to"], e["reason"]) for e in timeline][-1] == (
        "received", "cancelled", "patient moved")


def test_list_is_newest_first_filtered_and_paginated(client, auth, referral_body):
    ids = []
    for i in range(5):
        body = copy.deepcopy(referral_body)
        body["external_id"] = f"EHR-{i}"
        ids.append(post(client, auth, body).get_json()["id"])
    client.post(f"/api/v1/referrals/{ids[0]}/cancel", headers=auth)

    seen, url = [], "/api/v1/referrals?limit=2"
    while url:
        page = client.get(url, headers=auth).get_json()
        assert len(page["items"]) <= 2
        for item in page["items"]:
            assert set(item) >= {"id", "external_id", "status", "created_at", "updated_at",
                                 "links"}
        seen += [i["id"] for i in page["items"]]
        url = page.get("links", {}).get("next")
    assert seen == list(reversed(ids))

    cancelled = client.get("/api/v1/referrals?status=cancelled", headers=auth).get_json()
    assert [i["id"] for i in cancelled["items"]] == [ids[0]]
    assert_error(client.get("/api/v1/referrals?status=lost", headers=auth), 400)
    assert_error(client.get("/api/v1/referrals?status=", headers=auth), 400)
    assert_error(client.get("/api/v1/referrals?limit=0", headers=auth), 400)
    assert_error(client.get("/api/v1/referrals?cursor=%%%", headers=auth), 400)


def test_plan_not_ready_yet_is_404(client, auth, referral_body):
    rid = post(client, auth, referral_body).get_json()["id"]
    assert_error(client.get(f"/api/v1/referrals/{rid}/plan", headers=auth), 404, "plan_not_ready")


def test_errors_are_json_everywhere(client, auth, app):
    @app.get("/api/v1/test-boom")
    def boom():
        raise RuntimeError("patient Ann Lee broke it")

    assert_error(client.get("/api/v1/nothing-here", headers=auth), 404)
    r = client.delete("/api/v1/referrals", headers=auth)
    assert_error(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"]

    app.testing = False  # let the error handler answer instead of re-raising
    app.config["PROPAGATE_EXCEPTIONS"] = False
    r = client.get("/api/v1/test-boom")
    error = assert_error(r, 500, "internal_error")
    assert "Ann" not in error["message"]


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"]["migrations"] == "ok"


def test_a_raising_validation_plugin_flags_the_referral_for_staff(client, auth, referral_body,
                                                                  app):
    from refflow.plugins import hookimpl
    from refflow.plugins.manager import get_plugin_manager

    class Broken:
        @hookimpl
        def refflow_validate_referral(self, referral):
            raise KeyError("Ann Lee")  # the text (PHI) must not surface anywhere

    pm = get_plugin_manager(app.extensions["refflow.settings"])
    pm.register(Broken(), name="broken-rule")
    try:
        r = post(client, auth, referral_body)
    finally:
        pm.unregister(name="broken-rule")
    assert r.status_code == 202
    body = r.get_json()
    assert body["status"] == "received"
    [problem] = [p for p in body["problems"] if p["code"] == "plugin_failed"]
    assert problem["severity"] == "needs_review" and "broken-rule" in problem["message"]
    detail = client.get(body["links"]["self"], headers=auth).get_json()
    assert detail["flagged"] is True
    [event] = [e for e in detail["timeline"] if e["kind"] == "plugin_failed"]
    assert "broken-rule" in event["reason"] and "KeyError" in event["reason"]
    assert "Ann" not in str(detail["timeline"])


def test_refused_key_writes_nothing_and_answers_401_before_422(client, referral_body, practice,
                                                              db):
    from refflow.accounts.practices import revoke_key
    from refflow.db.models import ApiKey, IdempotencyKey, ReferralEvent

    key = practice[1]
    auth = {"Authorization": f"Bearer {key}"}
    assert post(client, auth, referral_body).status_code == 202
    with db.session() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.prefix == key.split("_")[1]))
        practice_id, key_hash, used = row.practice_id, row.key_hash, row.last_used_at
        assert used is not None  # the accepted request refreshed it
        revoke_key(session, key.split("_")[1])

    def counts():
        with db.session() as session:
            return [session.scalar(select(func.count()).select_from(m))
                    for m in (Referral, ReferralEvent, AuditEntry, OutboxMessage, IdempotencyKey)]

    before = counts()
    assert_error(post(client, auth, referral_body, **{"Idempotency-Key": "k-1"}), 401)
    assert_error(post(client, auth, {"nope": 1}), 401)  # the key is checked before the body
    assert_error(post(client, {"Authorization": "Bearer rf_00000000_nope"}, {"nope": 1}), 401)
    assert counts() == before
    with db.session() as session:  # the key row is untouched apart from its revocation
        row = session.scalar(select(ApiKey).where(ApiKey.prefix == key.split("_")[1]))
        assert (row.practice_id, row.key_hash, row.last_used_at) == (practice_id, key_hash, used)


def test_a_flagged_referral_is_accepted_with_its_problems(client, auth, referral_body, db):
    referral_body["diagnosis"] = {"codes": ["I10"], "text": "hypertension"}
    response = post(client, auth, referral_body)
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "received"
    assert [p["code"] for p in body["problems"]] == ["diagnosis_out_of_scope"]
    with db.session() as session:
        assert session.get(Referral, body["id"]).flagged


def test_a_rejected_referral_is_stored_rejected_without_starting_the_pipeline(
        client, auth, referral_body, db):
    referral_body["patient"]["birth_date"] = "2015-01-01"
    response = post(client, auth, referral_body)
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "rejected"
    assert [p["code"] for p in body["problems"]] == ["out_of_scope_age"]
    detail = client.get(body["links"]["self"], headers=auth).get_json()
    assert [(e["from"], e["to"]) for e in detail["timeline"]] == [(None, "received"),
                                                                  ("received", "rejected")]
    with db.session() as session:
        assert session.get(Referral, body["id"]).status == "rejected"
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_behind_a_trusted_proxy_the_audit_records_the_client_address(
        settings, make_practice, referral_body, monkeypatch, db):
    from refflow.app import create_app

    monkeypatch.setenv("REFFLOW_PROXY_HOPS", "1")
    client = create_app(settings, {"TESTING": True}).test_client()
    _, key = make_practice()
    response = client.post("/api/v1/referrals", json=referral_body,
                           headers={"Authorization": f"Bearer {key}",
                                    "X-Forwarded-Proto": "https",
                                    "X-Forwarded-For": "203.0.113.77"})
    assert response.status_code == 202
    assert "Strict-Transport-Security" in response.headers
    with db.session() as session:
        entry = session.scalar(select(AuditEntry).where(
            AuditEntry.referral_id == response.get_json()["id"]))
        assert entry.ip == "203.0.113.77"
