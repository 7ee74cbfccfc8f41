"""Rate-limit storage: Redis counts for every web process; while Redis is down
each process counts in its own memory (neither failing open nor failing the
request), and it goes back to Redis once Redis answers again."""

from __future__ import annotations

import uuid

import redis

from refflow.app import create_app
from refflow.web import limits


def _post(client, body, key, addr):
    return client.post("/api/v1/referrals", json=body, headers={"Authorization": f"Bearer {key}"},
                       environ_base={"REMOTE_ADDR": addr})


def _new_address() -> str:
    """A client address of this test only (the module's Redis keeps its counts)."""
    return "2001:db8::" + ":".join(uuid.uuid4().hex[i:i + 4] for i in range(0, 16, 4))


def test_intake_limits_count_in_redis_across_apps(settings, make_practice, referral_body,
                                                  redis_server):
    amount = 3
    tuned = settings.with_overrides(intake_rate_limit=f"{amount}/hour", broker_url=redis_server.url)
    one = create_app(tuned, {"TESTING": True}).test_client()
    two = create_app(tuned, {"TESTING": True}).test_client()  # another web process
    assert one.application.extensions["refflow.limiter"].storage == "redis"
    _, key = make_practice()
    addr = _new_address()
    statuses = [_post(one if i % 2 else two, referral_body, key, addr).status_code
                for i in range(amount + 1)]
    assert statuses == [202] * amount + [429]
    limited = _post(one, referral_body, key, addr)
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert 0 < int(limited.headers["Retry-After"]) <= 3601
    check = redis.Redis.from_url(redis_server.url)
    try:
        keys = [k.decode() for k in check.keys(f"{limits.KEY_PREFIX}*")]
    finally:
        check.close()
    assert any(addr in k for k in keys)  # the address is counted in Redis
    assert not any(key in k for k in keys)  # the API key only hashed


def test_while_redis_is_down_limits_count_in_memory_then_in_redis_again(
        settings, make_practice, referral_body, redis_server, caplog):
    tuned = settings.with_overrides(intake_rate_limit="3/hour", broker_url=redis_server.url)
    client = create_app(tuned, {"TESTING": True}).test_client()
    limiter = client.application.extensions["refflow.limiter"]
    _, key = make_practice()
    addr = _new_address()
    assert _post(client, referral_body, key, addr).status_code == 202  # counted in Redis

    redis_server.stop()
    try:
        with caplog.at_level("WARNING", logger="refflow.limits"):
            statuses = [_post(client, referral_body, key, addr).status_code for _ in range(4)]
        # answered, neither failed nor unlimited: this process counts in memory
        assert statuses == [202, 202, 202, 429]
        assert limiter.storage == "memory"
        assert any("Redis unavailable" in r.getMessage() for r in caplog.records)
    finally:
        redis_server.start()

    limiter.redis_down_until = 0.0  # the retry pause is over
    assert limiter.storage == "redis"
    assert _post(client, referral_body, key, addr).status_code == 202
    check = redis.Redis.from_url(redis_server.url)
    try:
        counts = [int(check.get(k)) for k in check.keys(f"{limits.KEY_PREFIX}*intake-ip*{addr}*")]
    finally:
        check.close()
    assert counts == [2]  # the first request and this one: the memory counts stay in memory
