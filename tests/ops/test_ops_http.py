"""Security headers, metrics, rate limits, JSON logs and request ids."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from refflow.app import create_app


def test_security_headers_on_api_and_pages(client):
    for path in ("/healthz", "/api/v1/plugins", "/api/v1/nope", "/login"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert "Strict-Transport-Security" not in headers  # plain HTTP: no HSTS
        assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-Id"])
    assert client.get("/api/v1/plugins").headers["Cache-Control"] == "no-store"


def test_hsts_only_over_tls(client):
    secure = client.get("/healthz", base_url="https://clinic.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_hsts_behind_a_trusted_proxy(settings, monkeypatch):
    monkeypatch.setenv("REFFLOW_PROXY_HOPS", "1")
    app = create_app(settings, {"TESTING": True})
    headers = app.test_client().get("/healthz", headers={"X-Forwarded-Proto": "https"}).headers
    assert "Strict-Transport-Security" in headers


def test_request_id_is_echoed_when_sane(client):
    assert client.get("/healthz", headers={"X-Request-Id": "abcDEF123456"}) \
        .headers["X-Request-Id"] == "abcDEF123456"
    assert client.get("/healthz", headers={"X-Request-Id": "bad id; drop"}) \
        .headers["X-Request-Id"] != "bad id; drop"


def test_metrics_have_route_rules_not_ids_or_phi(client, auth, referral_body):
    accepted = client.post("/api/v1/referrals", json=referral_body, headers=auth).get_json()
    client.get(f"/api/v1/referrals/{accepted['id']}", headers=auth)
    client.get("/api/v1/referrals/does-not-exist", headers=auth)
    client.get("/no/such/page/Ann-Lee")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    assert 'endpoint="/api/v1/referrals/<referral_id>"' in text
    assert 'refflow_referrals{state="received"} ' in text
    assert "refflow_intake_duration_seconds_bucket" in text
    assert 'outcome="accepted"' in text
    assert "refflow_outbox_backlog" in text and "refflow_database_up 1.0" in text
    assert 'endpoint="<unmatched>"' in text
    for secret in (accepted["id"], "does-not-exist", "Ann", "Lee", "EHR-12345", "Ann-Lee",
                   auth["Authorization"].split()[1]):
        assert secret not in text, secret


def test_intake_rate_limited_per_api_key_with_retry_after(settings, make_practice,
                                                          referral_body):
    app = create_app(settings.with_overrides(intake_rate_limit="3/minute"), {"TESTING": True})
    client = app.test_client()
    _, key_a = make_practice()
    _, key_b = make_practice()
    statuses = [client.post("/api/v1/referrals", json=referral_body,
                            headers={"Authorization": f"Bearer {key_a}"},
                            environ_base={"REMOTE_ADDR": f"10.0.0.{i}"}).status_code
                for i in range(4)]
    assert statuses == [202, 202, 202, 429]
    limited = client.post("/api/v1/referrals", json=referral_body,
                          headers={"Authorization": f"Bearer {key_a}"},
                          environ_base={"REMOTE_ADDR": "10.0.0.99"})
    assert limited.status_code == 429
    error = limited.get_json()["error"]
    assert error["code"] == "rate_limited" and set(error) == {"code", "message", "fields"}
    assert int(limited.headers["Retry-After"]) > 0
    # another practice's key is not held back by practice A's traffic
    other = client.post("/api/v1/referrals", json=referral_body,
                        headers={"Authorization": f"Bearer {key_b}"},
                        environ_base={"REMOTE_ADDR": "10.0.1.1"})
    assert other.status_code == 202
    # reads are not limited by the intake limit
    assert client.get("/api/v1/referrals",
                      headers={"Authorization": f"Bearer {key_a}"}).status_code == 200


def test_intake_rate_limited_per_address(settings, make_practice, referral_body):
    app = create_app(settings.with_overrides(intake_rate_limit="2/minute"), {"TESTING": True})
    client = app.test_client()
    keys = [make_practice()[1] for _ in range(3)]
    statuses = [client.post("/api/v1/referrals", json=referral_body,
                            headers={"Authorization": f"Bearer {k}"},
                            environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code
                for k in keys]
    assert statuses == [202, 202, 429]


def test_sign_in_is_rate_limited_by_endpoint_name(settings):
    app = create_app(settings.with_overrides(login_rate_limit="2/minute"),
                     {"TESTING": True, "WTF_CSRF_ENABLED": False})
    if "auth.login" not in app.view_functions:  # the web package not built yet
        app.add_url_rule("/login", "auth.login", lambda: "ok", methods=["GET", "POST"])
    client = app.test_client()
    data = {"email": "nobody@example.org", "password": "wrong"}
    answers = [client.post("/login", data=data) for _ in range(3)]
    statuses = [r.status_code for r in answers]
    assert statuses[:2] != [429, 429] and statuses[2] == 429
    # the browser's page says when to try again, as the JSON answer does
    assert answers[2].mimetype == "text/html" and int(answers[2].headers["Retry-After"]) >= 1
    assert client.get("/login").status_code != 429  # only POST counts


def test_json_log_lines_carry_request_id_and_no_phi(client, auth, referral_body):
    from refflow.ops.logging import ContextFilter, JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("refflow")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        from flask import current_app  # noqa: F401
        app = client.application

        @app.get("/api/v1/_boom", endpoint="boom")
        def _boom():
            from flask import request

            raise RuntimeError(request.headers["X-Patient"])  # data in the message

        response = client.get("/api/v1/_boom", headers={"X-Request-Id": "req0000000042",
                                                        "X-Patient": "Ann Lee 1951-03-02"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert response.status_code == 500
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines and all(line["request_id"] == "req0000000042" for line in lines)
    assert any(line["level"] == "ERROR" for line in lines)
    assert "Ann" not in stream.getvalue()


def test_request_id_goes_into_task_headers():
    from celery import signals

    from refflow.ops.logging import REQUEST_ID_HEADER, request_id_var
    from refflow.workers.task_signals import install_task_signals

    install_task_signals()
    token = request_id_var.set("abc123abc123")
    try:
        headers: dict = {}
        signals.before_task_publish.send(sender="refflow.build_plan", headers=headers, body=(),
                                         exchange="", routing_key="", properties={},
                                         declare=[], retry_policy=None)
    finally:
        request_id_var.reset(token)
    assert headers[REQUEST_ID_HEADER] == "abc123abc123"


def test_openapi_document_is_valid_and_complete(client):
    from jsonschema import Draft202012Validator

    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    documented = {(path.replace("{", "<").replace("}", ">"), method.upper())
                  for path, ops in spec["paths"].items() for method in ops}
    app = client.application
    served = {(r.rule, m) for r in app.url_map.iter_rules()
              if r.rule.startswith(("/api/", "/healthz", "/readyz", "/metrics"))
              for m in r.methods - {"HEAD", "OPTIONS"}}
    assert served <= documented, served - documented
    schemas = spec["components"]["schemas"]
    assert "Referral" in schemas and "Patient" in schemas and "Plan" in schemas
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            statuses = set(op["responses"])
            assert "500" in statuses, (path, method)
            for status, response in op["responses"].items():
                if int(status) >= 400 and not (path == "/readyz" and status == "503"):
                    assert response["content"]["application/json"]["schema"] == \
                        {"$ref": "#/components/schemas/Error"}
    for name, schema in schemas.items():
        Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"])
def test_ops_endpoints_need_no_credentials(client, path):
    assert client.get(path).status_code == 200


def test_relayed_messages_carry_their_own_request_id():
    # The relay runs inside tasks too: each message must carry the request id
    # of the referral it belongs to (from its outbox row), never the id of the
    # task that happens to be relaying. Real Celery and kombu, in-memory broker.
    from celery import Celery

    from refflow.ops.logging import REQUEST_ID_HEADER, request_id_var
    from refflow.pipeline.outbox import message_args
    from refflow.workers.publisher import celery_publisher
    from refflow.workers.task_signals import install_task_signals

    install_task_signals()
    app = Celery("relay-test", broker="memory://")
    publish = celery_publisher(app)
    token = request_id_var.set("current0task0")
    try:
        publish("refflow.build_plan", message_args(referral_id="r-1", request_id="intake0000r1"))
        publish("refflow.build_plan", message_args(referral_id="r-2"))
    finally:
        request_id_var.reset(token)
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue("refflow.planning")
        messages = [queue.get(timeout=2) for _ in range(2)]
        queue.close()
    assert [m.headers[REQUEST_ID_HEADER] for m in messages] == ["intake0000r1", None]
    assert [m.headers["kwargsrepr"] for m in messages] == ["{'referral_id': 'r-1'}",
                                                          "{'referral_id': 'r-2'}"]
