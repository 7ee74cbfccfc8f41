"""Rate-limit storage: Redis counts for every web process, memory when Redis is
unreachable (neither failing open nor failing the request)."""

from __future__ import annotations

import uuid

from refflow.app import create_app
from refflow.embedded import free_port


def _post(client, body, key, addr):
    return client.post("/api/v1/referrals", json=body, headers={"Authorization": f"Bearer {key}"},
                       environ_base={"REMOTE_ADDR": addr})


def test_intake_limits_count_in_redis_across_apps(settings, make_practice, referral_body,
                                                  redis_server):
    # a unique limit string per run: the counters of earlier runs never match
    limit = f"{2 + uuid.uuid4().int % 1000}/hour"
    amount = int(limit.split("/")[0])
    tuned = settings.with_overrides(intake_rate_limit=limit, broker_url=redis_server.url)
    one = create_app(tuned, {"TESTING": True}).test_client()
    two = create_app(tuned, {"TESTING": True}).test_client()  # another web process
    assert one.application.extensions["refflow.limiter"].storage == "redis"
    _, key = make_practice()
    addr = f"198.51.100.{uuid.uuid4().int % 250}"
    statuses = [_post(one if i % 2 else two, referral_body, key, addr).status_code
                for i in range(amount + 1)]
    assert statuses == [202] * amount + [429]
    limited = _post(one, referral_body, key, addr)
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert 0 < int(limited.headers["Retry-After"]) <= 3601


def test_unreachable_redis_falls_back_to_memory(settings, make_practice, referral_body):
    tuned = settings.with_overrides(intake_rate_limit="2/minute",
                                    broker_url=f"redis://127.0.0.1:{free_port()}/0")
    client = create_app(tuned, {"TESTING": True}).test_client()
    _, key = make_practice()
    statuses = [_post(client, referral_body, key, "203.0.113.9").status_code for _ in range(3)]
    assert statuses == [202, 202, 429]
